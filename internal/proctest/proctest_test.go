package proctest_test

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/proctest"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the process under test: with
// PROCTEST_CHILD set it acts as a clipstore process would.
func TestMain(m *testing.M) {
	switch os.Getenv("PROCTEST_CHILD") {
	case "":
		goleak.VerifyTestMain(m)
	case "serve": // ready, then until SIGTERM
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		fmt.Fprintln(os.Stderr, "starting")
		fmt.Println("storage node listening on 127.0.0.1:4711")
		<-term
		fmt.Fprintln(os.Stderr, "stopped")
		os.Exit(0)
	case "fail": // exits before it is ready
		fmt.Fprintln(os.Stderr, "no data directory")
		os.Exit(3)
	}
}

func child(t *testing.T, mode string) string {
	t.Setenv("PROCTEST_CHILD", mode)
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestStartWaitsForTheReadyLine(t *testing.T) {
	var log proctest.Buffer
	p, err := proctest.Start(&log, child(t, "serve"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr != "127.0.0.1:4711" || p.Exited() {
		t.Fatalf("Addr %q, exited %v", p.Addr, p.Exited())
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !p.Exited() || !strings.Contains(log.String(), "listening on") || !strings.Contains(log.String(), "stopped") {
		t.Fatalf("after Stop: exited %v, log %q", p.Exited(), log.String())
	}
}

func TestKillReaps(t *testing.T) {
	var log proctest.Buffer
	p, err := proctest.Start(&log, child(t, "serve"))
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	select {
	case <-p.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed after Kill")
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("exit status %v, want killed", err)
	}
	p.Kill() // a second kill is harmless
}

func TestStartFailsWhenTheProcessExits(t *testing.T) {
	var log proctest.Buffer
	p, err := proctest.Start(&log, child(t, "fail"), "storage")
	if err == nil || p != nil || !strings.Contains(err.Error(), "exited before it was ready: exit status 3") {
		t.Fatalf("Start = %v, %v; want an error naming the exit", p, err)
	}
	if !strings.Contains(log.String(), "no data directory") {
		t.Fatalf("log %q", log.String())
	}
}

func TestStartT(t *testing.T) {
	var log proctest.Buffer
	var p *proctest.Process
	t.Run("process", func(t *testing.T) {
		p = proctest.StartT(t, &log, child(t, "serve"))
	})
	if !p.Exited() {
		t.Fatal("the process outlived its test")
	}
}

func TestUnnamedFiles(t *testing.T) {
	dir := t.TempDir()
	named, err := os.Create(filepath.Join(dir, "named"))
	if err != nil {
		t.Fatal(err)
	}
	defer named.Close()
	gone, err := os.Create(filepath.Join(dir, "gone"))
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Close()
	if err := os.Remove(gone.Name()); err != nil { // deleted, but it had a name
		t.Fatal(err)
	}
	if got, err := proctest.UnnamedFiles(os.Getpid(), dir); err != nil || len(got) != 0 {
		t.Fatalf("before any unnamed file: %v, %v", got, err)
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(fd, make([]byte, 1234)); err != nil {
		t.Fatal(err)
	}
	got, err := proctest.UnnamedFiles(os.Getpid(), dir)
	if err != nil || len(got) != 1 {
		t.Fatalf("one unnamed file open: %v, %v", got, err)
	}
	if fi, err := os.Stat(got[0].FD); err != nil || fi.Size() != 1234 {
		t.Fatalf("stat %s: %v, %v; want 1234 bytes", got[0].FD, fi, err)
	}
	if filepath.Dir(got[0].Name) != dir || !strings.HasPrefix(filepath.Base(got[0].Name), "#") {
		t.Fatalf("name %q, want %s/#INODE", got[0].Name, dir)
	}
	if other, err := proctest.UnnamedFiles(os.Getpid(), t.TempDir()); err != nil || len(other) != 0 {
		t.Fatalf("another directory: %v, %v", other, err)
	}
	unix.Close(fd)
	if got, err := proctest.UnnamedFiles(os.Getpid(), dir); err != nil || len(got) != 0 {
		t.Fatalf("after close: %v, %v", got, err)
	}
}
