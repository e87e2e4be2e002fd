package proctest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// UnnamedFiles lists the files with no name (O_TMPFILE: a storage node's
// shards while they are written) that process pid holds open under the
// directory dir, as /proc/PID/fd/N paths: os.Stat on one reports the
// file's size while it stays open. A file's name, from readlink(2), is
// "DIR/#INODE (deleted)".
func UnnamedFiles(pid int, dir string) ([]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, fd := range fds {
		p := filepath.Join(fdDir, fd.Name())
		target, err := os.Readlink(p)
		if err != nil {
			continue // closed since the listing
		}
		if strings.HasPrefix(target, abs+"/") && strings.HasSuffix(target, " (deleted)") &&
			strings.HasPrefix(filepath.Base(strings.TrimSuffix(target, " (deleted)")), "#") {
			out = append(out, p)
		}
	}
	return out, nil
}
