package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/internal/proctest"
)

// proc is one clipstore process of the benchmark cluster, its log in
// dir/name.log.
type proc struct {
	*proctest.Process
	name string
	log  *os.File
}

// startProc runs `bin args...` with its logs in dir/name.log and waits
// (bounded) for its ready line.
func startProc(bin, dir, name string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	p, err := proctest.Start(logf, bin, args...)
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %w; log: %s", name, err, logf.Name())
	}
	return &proc{Process: p, name: name, log: logf}, nil
}

// kill kills and reaps the process and closes its log.
func (p *proc) kill() {
	p.Kill()
	p.log.Close()
}

// peakRSS is the process's peak resident set (VmHWM), in bytes.
func (p *proc) peakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", p.Pid())
}

// cpuTime is the CPU time (user and system, all threads) the process has
// used so far: utime+stime of /proc/PID/stat.
func (p *proc) cpuTime() (time.Duration, error) { return pidCPU(p.Pid()) }

// pidCPU is the CPU time (utime+stime) of process pid.
func pidCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command, which is in parentheses: state (3),
	// ..., utime (14), stime (15), in clock ticks.
	_, after, _ := bytes.Cut(b, []byte(") "))
	f := strings.Fields(string(after))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// userHZ is the unit of the times in /proc/PID/stat (USER_HZ, sysconf
// _SC_CLK_TCK): 100 on every Linux architecture Go supports.
const userHZ = 100

// benchCluster is 1 meta and n storage processes on loopback, the layout
// `make bench` measures. Meta has a cluster secret, so that S3 gateways
// can run. With tls, every process and every CLI run has TLS flags (tls.go),
// and the cluster is a secure one: meta takes only signed calls
// (--require-auth, the root key signing the harness's), and storage nodes
// check capability tokens.
type benchCluster struct {
	bin, dir string
	tls      *benchTLS // nil: plain text
	meta     *proc
	storage  []*proc
}

func startBenchCluster(ctx context.Context, bin, dir string, storageNodes int) (*benchCluster, error) {
	return startBenchClusterTLS(ctx, bin, dir, storageNodes, nil)
}

// startBenchClusterTLS is startBenchCluster with TLS on every link (tls
// nil: plain text).
func startBenchClusterTLS(ctx context.Context, bin, dir string, storageNodes int, tls *benchTLS) (*benchCluster, error) {
	c := &benchCluster{bin: bin, dir: dir, tls: tls}
	for _, f := range []string{c.secretFile(), c.secretsKeyFile()} {
		secret := make([]byte, 32)
		rand.Read(secret)
		if err := os.WriteFile(f, []byte(base64.RawURLEncoding.EncodeToString(secret)+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	var auth []string
	if tls != nil {
		if err := os.WriteFile(c.rootKeyFile(), []byte(benchRootKey+" "+benchRootSecret+"\n"), 0o600); err != nil {
			return nil, err
		}
		auth = []string{"--require-auth", "--root-key-file", c.rootKeyFile()}
	}
	var err error
	c.meta, err = startProc(bin, dir, "meta", slices.Concat([]string{"meta", "--id", "m0", "--data", filepath.Join(dir, "m0"),
		"--raft", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--bootstrap", "--log-level", "warn",
		"--cluster-secret-file", c.secretFile(), "--secrets-key-file", c.secretsKeyFile(),
		// The drain measurement adds a node: no rebalance may start then.
		"--auto-rebalance=false"}, tls.flags(tlsMetaCert), auth)...)
	if err != nil {
		return nil, err
	}
	for range storageNodes {
		if err := c.startStorage(); err != nil {
			c.stop()
			return nil, err
		}
	}
	if err := c.waitNodesUp(ctx, storageNodes); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// storageFlags are added to every storage node's and dev's flags
// (-storage-flag).
var storageFlags []string

// startStorage starts the next storage node, s<i> in zone i%3.
func (c *benchCluster) startStorage() error {
	i := len(c.storage)
	name := fmt.Sprintf("s%d", i)
	p, err := startProc(c.bin, c.dir, name, slices.Concat([]string{"storage", "--id", name, "--data", filepath.Join(c.dir, name),
		"--listen", "127.0.0.1:0", "--zone", fmt.Sprintf("zone-%d", i%3), "--meta", c.meta.Addr,
		"--scrub-interval", "0", "--log-level", "warn"}, c.tls.flags(tlsStorageCert), storageFlags)...)
	if err != nil {
		return err
	}
	c.storage = append(c.storage, p)
	return nil
}

func (c *benchCluster) secretFile() string { return filepath.Join(c.dir, "cluster-secret") }

// secretsKeyFile seals the access keys' secrets in meta.
func (c *benchCluster) secretsKeyFile() string { return filepath.Join(c.dir, "secrets-key") }

// rootKeyFile holds the root key of a TLS cluster, which signs the
// harness's calls.
func (c *benchCluster) rootKeyFile() string { return filepath.Join(c.dir, "root-key") }

// keyFlags sign a CLI's calls to a TLS cluster with the root key.
func (c *benchCluster) keyFlags() []string {
	if c.tls == nil {
		return nil
	}
	return []string{"--key-file", c.rootKeyFile()}
}

// The TLS cluster's root key.
const (
	benchRootKey    = "BENCHROOTKEY"
	benchRootSecret = "bench-root-secret-key"
)

// accessKey is an S3 credential.
type accessKey struct {
	ID     string `json:"access_key_id"`
	Secret string `json:"secret_access_key"`
}

// startGateway makes an access key (clipstore admin keys create) and
// starts a `clipstore s3` gateway; the caller kills it.
func (c *benchCluster) startGateway(ctx context.Context) (*proc, accessKey, error) {
	var key accessKey
	var out bytes.Buffer
	if _, err := c.clipstore(ctx, nil, &out, "admin", "keys", "create", "bench", "--allow", "*:admin", "--json"); err != nil {
		return nil, key, err
	}
	if err := json.Unmarshal(out.Bytes(), &key); err != nil || key.ID == "" || key.Secret == "" {
		return nil, key, fmt.Errorf("admin keys create --json: %q: %v", out.String(), err)
	}
	gw, err := startProc(c.bin, c.dir, "s3", "s3", "--listen", "127.0.0.1:0", "--meta", c.meta.Addr,
		"--cluster-secret-file", c.secretFile(), "--log-level", "warn")
	return gw, key, err
}

// addStorage starts one more storage node and waits until meta hears it.
func (c *benchCluster) addStorage(ctx context.Context) error {
	if err := c.startStorage(); err != nil {
		return err
	}
	return c.waitNodesUp(ctx, len(c.storage))
}

func (c *benchCluster) stop() {
	for _, p := range c.storage {
		p.kill()
	}
	if c.meta != nil {
		c.meta.kill()
	}
}

// waitNodesUp waits (at most a minute) until meta has heard from n
// storage nodes.
func (c *benchCluster) waitNodesUp(ctx context.Context, n int) error {
	return c.waitStatus(ctx, func(st *client.ClusterStatus) (bool, string) {
		up := 0
		for _, node := range st.Nodes {
			if node.Up {
				up++
			}
		}
		return up >= n, fmt.Sprintf("%d of %d storage nodes up", up, n)
	})
}

// waitQuiet waits (at most a minute) until the cluster has no background
// work left: every shard deletion meta queued (a load run deletes its clips
// at the end) acknowledged by its node, and no repair in flight. Each
// measurement then starts on an idle cluster, as the references do, and
// not while the nodes still unlink the last run's shards.
func (c *benchCluster) waitQuiet(ctx context.Context) error {
	return c.waitStatus(ctx, func(st *client.ClusterStatus) (bool, string) {
		return st.PendingDeletes == 0 && st.RepairsInFlight == 0, fmt.Sprintf("cluster not idle: %d shard deletions pending, %d repairs in flight",
			st.PendingDeletes, st.RepairsInFlight)
	})
}

// waitStatus polls meta's cluster status until ready says so, for at most
// a minute; then it fails with what ready (or the status call) last said.
func (c *benchCluster) waitStatus(ctx context.Context, ready func(*client.ClusterStatus) (bool, string)) error {
	cl, err := c.client(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	return await.Poll(ctx, time.Minute, 100*time.Millisecond, func() (bool, string) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := cl.ClusterStatus(sctx)
		cancel()
		if err != nil {
			return false, fmt.Sprintf("cluster status: %v", err)
		}
		return ready(st)
	})
}

// client is a client of the cluster, with the client certificate if it has
// TLS.
func (c *benchCluster) client(ctx context.Context) (*client.Client, error) {
	id, err := c.tls.loader(tlsClientCert)
	if err != nil {
		return nil, err
	}
	cfg := client.Config{Meta: []string{c.meta.Addr}, TLS: id}
	if c.tls != nil {
		cfg.AccessKey, cfg.SecretKey = benchRootKey, benchRootSecret
	}
	return client.New(ctx, cfg)
}

// clipstore runs the clipstore binary against the cluster, with stdin and
// stdout as given (nil: none) and stderr to the harness's stderr, and
// returns its peak RSS.
func (c *benchCluster) clipstore(ctx context.Context, stdin io.Reader, stdout io.Writer, args ...string) (int64, error) {
	cmd := exec.CommandContext(ctx, c.bin, slices.Concat(args, []string{"--meta", c.meta.Addr}, c.tls.flags(tlsClientCert))...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, os.Stderr
	if c.tls != nil {
		cmd.Env = append(os.Environ(), "CLIPSTORE_KEY_FILE="+c.rootKeyFile())
	}
	err := cmd.Run()
	var rss int64
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss << 10 // KiB on Linux
		}
	}
	if err != nil {
		return rss, fmt.Errorf("clipstore %s: %w", strings.Join(args, " "), err)
	}
	return rss, nil
}
