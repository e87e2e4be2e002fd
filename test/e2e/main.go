package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// binary is the clipstore binary Main built for this test package.
var binary string

// Main is the TestMain of an end-to-end test package: it builds the
// clipstore binary (without -race: the processes run at speed; the test
// code itself runs under the race detector), runs the tests, fails them on
// leaked goroutines, removes the binary and exits.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "clipstore-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "clipstore")
	build := exec.Command("go", "build", "-o", binary, "github.com/clipstore/clipstore/cmd/clipstore")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build clipstore:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := 0
	func() {
		defer os.RemoveAll(dir)
		defer func() {
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				code = 1
			}
		}()
		code = m.Run()
	}()
	os.Exit(code)
}

// Binary is the path of the clipstore binary Main built.
func Binary() string {
	if binary == "" {
		panic("e2e: no clipstore binary; the test package's TestMain must call e2e.Main")
	}
	return binary
}
