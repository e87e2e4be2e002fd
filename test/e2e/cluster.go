package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/await"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Cluster is 3 `clipstore meta` and some `clipstore storage` processes.
type Cluster struct {
	t       testing.TB
	Root    string // the data directories are Root/<id>
	Metas   []*MetaMember
	Storage []*StorageNode
	// StorageArgs are extra flags for every storage process
	// StartStorage starts.
	StorageArgs []string
	zones       int
	// TLS, if set, are the certificates every process and the CLI use.
	TLS *TLSCerts
	// RootKey, with ClusterOptions.RequireAuth, is the root key pair that
	// Client and CLI sign their calls with.
	RootKey [2]string
}

// ClusterOptions shape StartCluster's cluster.
type ClusterOptions struct {
	StorageNodes int      // how many, s0 to sN-1 in zones zone-0 to zone-2
	Zones        int      // how many zones the nodes are spread over (0: 3)
	MetaArgs     []string // extra flags for every meta member's first start
	StorageArgs  []string // extra flags for every storage process
	// TLS runs every process with TLS and mutual authentication, with
	// certificates made by clipstore admin certs (Cluster.TLS).
	TLS bool
	// RequireAuth (with TLS) gives the meta members a root key and
	// --require-auth: Client and CLI sign with the root key.
	RequireAuth bool
}

// StorageNode is a `clipstore storage` process of a Cluster and how to
// start it again.
type StorageNode struct {
	ID, Dir, Zone string
	Proc          *Process
}

// StartCluster runs 3 meta members (m0 bootstraps, m1 and m2 join it) and
// o.StorageNodes storage nodes, and waits until meta has heard from every
// storage node.
func StartCluster(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Root: t.TempDir(), StorageArgs: o.StorageArgs}
	if o.TLS {
		c.TLS = MakeTLSCerts(t, filepath.Join(c.Root, "tls"))
		o.MetaArgs = append(c.TLS.Flags("meta"), o.MetaArgs...)
		c.StorageArgs = append(c.TLS.Flags("storage"), c.StorageArgs...)
	}
	if o.RequireAuth {
		c.RootKey = [2]string{"E2EROOTKEY", "e2e-root-secret-key"}
		file := filepath.Join(c.Root, "root-key")
		if err := os.WriteFile(file, []byte(c.RootKey[0]+" "+c.RootKey[1]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		o.MetaArgs = append([]string{"--require-auth", "--root-key-file", file}, o.MetaArgs...)
	}
	for i := range 3 {
		c.Metas = append(c.Metas, &MetaMember{ID: fmt.Sprintf("m%d", i), Dir: filepath.Join(c.Root, fmt.Sprintf("m%d", i)), tls: c.TLS})
	}
	c.Metas[0].Start(t, append([]string{"--bootstrap"}, o.MetaArgs...)...)
	c.Metas[1].Start(t, append([]string{"--join", c.Metas[0].GRPCAddr}, o.MetaArgs...)...)
	c.Metas[2].Start(t, append([]string{"--join", c.Metas[0].GRPCAddr}, o.MetaArgs...)...)
	c.zones = o.Zones
	if c.zones == 0 {
		c.zones = 3
	}
	for range o.StorageNodes {
		c.AddStorage()
	}
	c.WaitNodesUp(o.StorageNodes)
	return c
}

// StartDurabilityCluster runs 3 meta and n storage processes with short
// failure-detection, repair, scrub and GC timers.
func StartDurabilityCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartCluster(t, ClusterOptions{StorageNodes: n,
		MetaArgs:    []string{"--node-down-after", "2s", "--repair-after", "1s", "--gc-grace", "0s", "--max-upload-duration", "3s"},
		StorageArgs: []string{"--scrub-interval", "2s", "--scrub-rate", "200MiB", "--gc-interval", "1s"},
	})
}

// MetaLeader returns the member cluster status names as the leader, and
// the term.
func (c *Cluster) MetaLeader(cl *client.Client) (*MetaMember, uint64) {
	c.t.Helper()
	st, err := cl.ClusterStatus(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	for _, m := range c.Metas {
		if m.ID == st.Leader {
			return m, st.Term
		}
	}
	c.t.Fatalf("leader %q is none of the members", st.Leader)
	return nil, 0
}

// Processes are the cluster's running processes: meta members and storage
// nodes.
func (c *Cluster) Processes() []*Process {
	var out []*Process
	for _, m := range c.Metas {
		if m.Proc != nil && !m.Proc.Exited() {
			out = append(out, m.Proc)
		}
	}
	for _, s := range c.Storage {
		if s.Proc != nil && !s.Proc.Exited() {
			out = append(out, s.Proc)
		}
	}
	return out
}

// MetaAddrs is the members' gRPC addresses, comma-separated.
func (c *Cluster) MetaAddrs() string {
	var out []string
	for _, m := range c.Metas {
		out = append(out, m.GRPCAddr)
	}
	return strings.Join(out, ",")
}

// AddStorage starts one more storage node, the next s<i>, in the next
// zone round robin.
func (c *Cluster) AddStorage() *StorageNode {
	c.t.Helper()
	i := len(c.Storage)
	s := &StorageNode{ID: fmt.Sprintf("s%d", i), Dir: filepath.Join(c.Root, fmt.Sprintf("s%d", i)), Zone: fmt.Sprintf("zone-%d", i%c.zones)}
	c.Storage = append(c.Storage, s)
	c.StartStorage(s)
	return s
}

// StartStorage starts (or restarts) s with c.StorageArgs.
func (c *Cluster) StartStorage(s *StorageNode) {
	c.t.Helper()
	args := []string{"storage", "--id", s.ID, "--data", s.Dir, "--listen", "127.0.0.1:0", "--zone", s.Zone,
		"--meta", c.MetaAddrs(), "--log-level", "debug"}
	s.Proc = Start(c.t, append(args, c.StorageArgs...)...)
}

// Client is a client of the cluster; it closes at cleanup.
func (c *Cluster) Client() *client.Client {
	cl, err := client.New(context.Background(), client.Config{Meta: strings.Split(c.MetaAddrs(), ","), TLS: c.TLS.Loader(c.t, "client"),
		AccessKey: c.RootKey[0], SecretKey: c.RootKey[1]})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// WaitNodesUp waits until meta's leader has heard from n storage nodes
// registered at their current addresses.
func (c *Cluster) WaitNodesUp(n int) {
	c.t.Helper()
	cl := c.Client()
	live := map[string]bool{}
	for _, s := range c.Storage {
		if s.Proc != nil && !s.Proc.Exited() {
			live[s.Proc.Addr] = true
		}
	}
	await.True(c.t, 60*time.Second, fmt.Sprintf("%d storage nodes up", n), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := cl.ClusterStatus(ctx)
		if err != nil {
			return false
		}
		up := 0
		for _, node := range st.Nodes {
			if node.Up && live[node.Address] && time.Since(node.LastHeartbeat) < 3*time.Second {
				up++
			}
		}
		return up >= n
	})
}

// CLI runs the clipstore binary against the cluster and returns its
// stdout, stderr and exit code.
func (c *Cluster) CLI(args ...string) (string, string, int) {
	c.t.Helper()
	return CLI(c.t, c.Env(), append(args, "--meta", c.MetaAddrs())...)
}

// Env is the CLI's environment for the cluster: its client certificate
// and, with RequireAuth, the root key.
func (c *Cluster) Env() []string {
	env := c.TLS.Env("client")
	if c.RootKey[0] != "" {
		env = append(env, "CLIPSTORE_ACCESS_KEY="+c.RootKey[0], "CLIPSTORE_SECRET_KEY="+c.RootKey[1])
	}
	return env
}

// CLI runs the clipstore binary with args and env added to the test's
// environment, and returns its stdout, stderr and exit code.
func CLI(t testing.TB, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(Binary(), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

var raftAddrRe = regexp.MustCompile(`\(raft (127\.0\.0\.1:\d+)\)`)

// MetaMember is a `clipstore meta` process and how to start it again.
type MetaMember struct {
	ID, Dir            string
	RaftAddr, GRPCAddr string // kept across restarts
	Proc               *Process
	Client             pb.MetaServiceClient
	tls                *TLSCerts
}

// Start starts (or restarts, on the same addresses) the member, with
// extra flags.
func (m *MetaMember) Start(t testing.TB, extra ...string) {
	t.Helper()
	raft, grpcAddr := m.RaftAddr, m.GRPCAddr
	if raft == "" {
		raft, grpcAddr = stableAddr(t), stableAddr(t)
	}
	args := append([]string{"meta", "--id", m.ID, "--data", m.Dir, "--raft", raft, "--listen", grpcAddr,
		"--log-level", "debug", "--node-down-after", "1m",
		// The state file commits only when something reads it: applied
		// entries stay in memory, so a SIGKILL loses them and the restarted
		// member must re-apply them from its Raft log.
		"--state-batch-interval", "1h", "--state-batch-limit", "1000000"}, extra...)
	m.Proc = Start(t, args...)
	m.GRPCAddr = m.Proc.Addr
	if sub := raftAddrRe.FindStringSubmatch(m.Proc.Log.String()); sub != nil {
		m.RaftAddr = sub[1]
	}
	conn, err := grpc.NewClient(m.GRPCAddr, grpc.WithTransportCredentials(m.tls.Credentials(t, "client")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	m.Client = pb.NewMetaServiceClient(conn)
}

// stableAddr returns a loopback address free now, on a port below the
// kernel's ephemeral range. A member restarts on the addresses it had,
// and a port the kernel chose for a listener (127.0.0.1:0) is one it also
// hands to outgoing connections: while the member is down, any client's
// new connection may take it, and the restart fails with "address already
// in use". Below the range, only another listener can.
func stableAddr(t testing.TB) string {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	first := max(low-15000, 1024)
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", first+rand.IntN(low-first))
		if lis, err := net.Listen("tcp", addr); err == nil {
			lis.Close()
			return addr
		}
	}
	t.Fatalf("no free port in %d-%d", first, low-1)
	return ""
}

// Retry repeats call while it fails with Unavailable or DeadlineExceeded
// (no leader yet), as a client does, for at most 20 s; each call gets 5 s.
func Retry(t testing.TB, call func(ctx context.Context) error) error {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := call(ctx)
		cancel()
		code := status.Code(err)
		if (code != codes.Unavailable && code != codes.DeadlineExceeded) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
