// Package proctest runs clipstore processes for the end-to-end tests and
// the benchmark harness: it starts a binary, waits (bounded) for its ready
// line "listening on 127.0.0.1:PORT" on stdout, sends what the process
// writes to a log, and kills (SIGKILL) or stops (SIGTERM) it and reaps it.
// Every wait is bounded and every process it starts is reaped.
//
// Start needs no *testing.T, so a plain binary (cmd/benchreport) can use
// it; StartT is its helper for tests, which kills and reaps the process at
// the test's cleanup and prints its log if the test failed.
package proctest

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ReadyTimeout bounds the wait for a process's ready line.
const ReadyTimeout = 30 * time.Second

// StopTimeout bounds the wait for a process to exit after SIGTERM.
const StopTimeout = 30 * time.Second

// readyLine is what a clipstore process prints on stdout once it serves:
// the address it listens on.
var readyLine = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)

// Process is a running (or exited) process started by Start.
type Process struct {
	// Addr is the address from the process's ready line.
	Addr string

	cmd  *exec.Cmd
	what string        // the command line, for messages
	done chan struct{} // closed when the process has been reaped
	err  error         // its exit status, valid after done
}

// Start runs bin with args, sending its stdout and stderr to log, and
// waits at most ReadyTimeout for its ready line. log must be safe for
// concurrent writes (an *os.File or a *Buffer is). On error the process
// has been killed and reaped.
func Start(log io.Writer, bin string, args ...string) (*Process, error) {
	p := &Process{cmd: exec.Command(bin, args...), done: make(chan struct{}),
		what: strings.Join(append([]string{bin}, args...), " ")}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = log
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(log, sc.Text())
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case ready <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout) // past a line too long to scan
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	timer := time.NewTimer(ReadyTimeout)
	defer timer.Stop()
	select {
	case p.Addr = <-ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready: %v", p.what, p.err)
	case <-timer.C:
		p.Kill()
		return nil, fmt.Errorf("%s not ready within %v", p.what, ReadyTimeout)
	}
}

// Kill sends SIGKILL and waits for the process to be reaped.
func (p *Process) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits at most StopTimeout for the process to
// exit; it returns the exit status. A process still running then is
// killed, and Stop says so.
func (p *Process) Stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(StopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.err
	case <-timer.C:
		p.Kill()
		return fmt.Errorf("no exit within %v of SIGTERM", StopTimeout)
	}
}

// Freeze stops the process (SIGSTOP) as a stalled disk, a long pause or a
// frozen VM would: it holds its sockets and answers nothing until Thaw.
// (The cleanup's SIGKILL ends a frozen process too.)
func (p *Process) Freeze() error { return p.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw lets a frozen process run on (SIGCONT).
func (p *Process) Thaw() error { return p.cmd.Process.Signal(syscall.SIGCONT) }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited and been reaped.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err waits for the process to exit and returns its exit status.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// StartT is Start for test t, with the process's output kept in log: it
// fails t if the process does not become ready, and at t's cleanup kills
// and reaps the process and, if t failed, logs what it wrote.
func StartT(t testing.TB, log *Buffer, bin string, args ...string) *Process {
	t.Helper()
	p, err := Start(log, bin, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", p.what, log.String())
		}
	})
	return p
}

// Buffer is a process log kept in memory, safe for concurrent writes.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
