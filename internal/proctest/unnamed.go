package proctest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Unnamed is a file with no name that a process holds open.
type Unnamed struct {
	// FD is its /proc/PID/fd/N path: os.Stat on it reports the file's
	// size while it stays open.
	FD string
	// Name is what readlink(2) gives it, less " (deleted)": DIR/#INODE,
	// unique while it is open.
	Name string
}

// UnnamedFiles lists the files with no name (O_TMPFILE: a storage node's
// shards while they are written) that process pid holds open under the
// directory dir.
func UnnamedFiles(pid int, dir string) ([]Unnamed, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	var out []Unnamed
	for _, fd := range fds {
		p := filepath.Join(fdDir, fd.Name())
		target, err := os.Readlink(p)
		if err != nil {
			continue // closed since the listing
		}
		name, deleted := strings.CutSuffix(target, " (deleted)")
		if deleted && strings.HasPrefix(name, abs+"/") && strings.HasPrefix(filepath.Base(name), "#") {
			out = append(out, Unnamed{FD: p, Name: name})
		}
	}
	return out, nil
}
