package e2e

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clipstore/clipstore/internal/proctest"
	pb "github.com/clipstore/clipstore/proto/storagepb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Process is a clipstore process a test started, and its log.
type Process struct {
	*proctest.Process
	Log *proctest.Buffer
}

// Start runs `clipstore args...`, waits (bounded) for its ready line and
// registers a cleanup that kills and reaps it (and prints its log if the
// test failed).
func Start(t testing.TB, args ...string) *Process {
	t.Helper()
	log := &proctest.Buffer{}
	return &Process{Process: proctest.StartT(t, log, Binary(), args...), Log: log}
}

// StartStorage runs a storage node with no meta on a random loopback port.
func StartStorage(t testing.TB, dataDirs ...string) *Process {
	t.Helper()
	return Start(t, "storage", "--listen", "127.0.0.1:0", "--data", strings.Join(dataDirs, ","), "--log-level", "debug")
}

// StorageClient dials a storage node; the connection closes at cleanup.
func StorageClient(t testing.TB, addr string) pb.StorageServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(32<<20), grpc.MaxCallSendMsgSize(32<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewStorageServiceClient(conn)
}

// TempFiles lists the files of shards the storage node p is writing, or
// left behind, on its disk dir: named temp files under tmp/, and the files
// with no name yet that it holds open under dir, as DIR/shards/XX/#INODE
// (the name /proc gives them, unique while they are open).
func (p *Process) TempFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	entries, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read %s/tmp: %v", dir, err)
	}
	for _, e := range entries {
		out = append(out, filepath.Join(dir, "tmp", e.Name()))
	}
	files, err := proctest.UnnamedFiles(p.Pid(), dir)
	if err != nil && !p.Exited() {
		t.Fatalf("files open in %s: %v", dir, err)
	}
	for _, f := range files {
		out = append(out, f.Name)
	}
	return out
}
