package deps_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/clipstore/clipstore"

// pkg is what `go list -json` says of a package that these rules read.
type pkg struct {
	ImportPath string
	Doc        string
	Standard   bool
	DepOnly    bool
	Deps       []string
}

// list runs `go list -deps -json` over the whole module: its packages
// and everything they import (tests excluded).
func list(t *testing.T) map[string]*pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-json", module+"/...").Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("go list: %v\n%s", err, exit.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		p := &pkg{}
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			return pkgs
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
}

// get is the package at path, which must be there.
func get(t *testing.T, pkgs map[string]*pkg, path string) *pkg {
	t.Helper()
	p := pkgs[path]
	if p == nil {
		t.Fatalf("go list does not list %s", path)
	}
	return p
}

// within reports whether path is root or a package under it.
func within(path, root string) bool {
	return path == root || strings.HasPrefix(path, root+"/")
}

// TestDependencies holds the tree's dependency rules and checks that every
// package is documented; see the package comment.
func TestDependencies(t *testing.T) {
	pkgs := list(t)
	t.Run("erasure is a pure codec", func(t *testing.T) { erasureIsPure(t, pkgs) })
	t.Run("layers", func(t *testing.T) { layers(t, pkgs) })
	t.Run("every package is documented", func(t *testing.T) { documented(t, pkgs) })
}

func erasureIsPure(t *testing.T, pkgs map[string]*pkg) {
	const rs = "github.com/klauspost/reedsolomon"
	allowed := map[string]bool{rs: true}
	for _, d := range get(t, pkgs, rs).Deps {
		allowed[d] = true
	}
	for _, d := range get(t, pkgs, module+"/erasure").Deps {
		if !pkgs[d].Standard && !allowed[d] {
			t.Errorf("erasure depends on %s; it may import only the standard library and %s", d, rs)
		}
	}
}

func layers(t *testing.T, pkgs map[string]*pkg) {
	for _, rule := range []struct {
		pkg       string
		forbidden []string
		why       string
	}{
		{module + "/meta", []string{module + "/server"}, "meta and the storage node are separate roles"},
		{module + "/server", []string{module + "/meta"}, "meta and the storage node are separate roles"},
		{module + "/client", []string{module + "/meta", module + "/server", "github.com/hashicorp/raft", "go.etcd.io/bbolt", "github.com/boltdb/bolt"},
			"ingest pipelines import the client"},
	} {
		for _, d := range get(t, pkgs, rule.pkg).Deps {
			for _, f := range rule.forbidden {
				if within(d, f) {
					t.Errorf("%s depends on %s (%s)", rule.pkg, d, rule.why)
				}
			}
		}
	}
}

func documented(t *testing.T, pkgs map[string]*pkg) {
	for path, p := range pkgs {
		if !p.DepOnly && within(path, module) && p.Doc == "" {
			t.Errorf("%s has no package comment: give it a doc.go saying what it owns", path)
		}
	}
}
