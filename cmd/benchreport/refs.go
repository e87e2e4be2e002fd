package main

// The raw references the end-to-end figures are measured against, on the
// same disk and the same loopback interface, in the same run.

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// bestOf returns the highest of n measurements.
func bestOf(n int, measure func() (float64, error)) (float64, error) {
	best := 0.0
	for range n {
		v, err := measure()
		if err != nil {
			return 0, err
		}
		best = max(best, v)
	}
	return best, nil
}

// diskWriteRate writes total bytes to a new file in dir in 1 MiB writes
// and fsyncs it (dd bs=1M conv=fsync), and returns bytes/s.
func diskWriteRate(dir string, total int64) (float64, error) {
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	name := filepath.Join(dir, "ref-disk-write")
	defer os.Remove(name)
	f, err := os.Create(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	for n := int64(0); n < total; n += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

// smallFilesOpsPerSec is the rate of "puts" of raw files: one op creates,
// writes and fsyncs files files of size bytes each, in turn; workers ops
// run at once, for d. With publish, each file is written as a storage node
// writes a shard (DESIGN.md "Write path"): a temp file in one directory,
// fsynced, renamed into one of 256 fan-out directories, which is fsynced.
func smallFilesOpsPerSec(dir string, files, size, workers int, d time.Duration, publish bool) (float64, error) {
	buf := make([]byte, size)
	rand.Read(buf)
	root := filepath.Join(dir, "ref-small-files")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return 0, err
	}
	defer os.RemoveAll(root)
	tmp := filepath.Join(root, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return 0, err
	}
	var ops atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				for j := range files {
					name := filepath.Join(root, fmt.Sprintf("w%d-%d-%d", w, i, j))
					var err error
					if publish {
						name, err = publishSync(tmp, filepath.Join(root, fmt.Sprintf("%02x", (w*131+i*31+j*7)%256)), name, buf)
					} else {
						err = writeFileSync(name, buf)
					}
					if err == nil {
						err = os.Remove(name) // keep the directory small, as GC keeps the store's
					}
					if err != nil {
						once.Do(func() { firstErr = err })
						return
					}
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(ops.Load()) / time.Since(start).Seconds(), nil
}

// publishSync writes data to a temp file in tmpDir, fsyncs it, renames it
// into dir (created if need be) and fsyncs dir; it returns the final name.
func publishSync(tmpDir, dir, name string, data []byte) (string, error) {
	temp := filepath.Join(tmpDir, filepath.Base(name))
	if err := writeFileSync(temp, data); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(dir, filepath.Base(name))
	if err := os.Rename(temp, final); err != nil {
		return "", err
	}
	d, err := os.Open(dir)
	if err != nil {
		return "", err
	}
	defer d.Close()
	return final, d.Sync()
}

func writeFileSync(name string, data []byte) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// loopbackTCPRate copies total bytes over one TCP connection on
// 127.0.0.1 in 1 MiB writes, the receiver discarding them, and returns
// bytes/s.
func loopbackTCPRate(total int64) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	received := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			received <- err
			return
		}
		defer conn.Close()
		buf := make([]byte, 1<<20)
		var n int64
		for n < total {
			m, err := conn.Read(buf)
			n += int64(m)
			if err != nil {
				received <- fmt.Errorf("after %d bytes: %w", n, err)
				return
			}
		}
		received <- nil
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	start := time.Now()
	for n := int64(0); n < total; n += int64(len(buf)) {
		if _, err := conn.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := <-received; err != nil {
		return 0, err
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

// patternReader yields n bytes of a 1 MiB random pattern, shifted by one
// byte each round so no two MiB of the stream are equal.
type patternReader struct {
	pat  []byte
	n    int64
	read int64
}

func newPatternReader(n int64) *patternReader {
	pat := make([]byte, 1<<20+1)
	rand.Read(pat)
	return &patternReader{pat: pat, n: n}
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.read >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-r.read)]
	done := 0
	for done < len(p) {
		off := int(r.read % int64(len(r.pat)))
		c := copy(p[done:], r.pat[off:])
		done += c
		r.read += int64(c)
	}
	return done, nil
}
