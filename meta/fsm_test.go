package meta

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

func testFSM(t testing.TB) *fsm {
	t.Helper()
	f, err := openFSM(filepath.Join(t.TempDir(), "state.db"), slog.New(slog.DiscardHandler), fsmOptions{
		requestTTL: time.Hour,
		fatal:      func(err error) { t.Fatalf("fatal FSM error: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.close() })
	return f
}

func cmdLog(t testing.TB, index uint64, cmd *pb.Command) *raft.Log {
	t.Helper()
	b, err := proto.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: b}
}

// TestApplyBatchKeepsGoingPastRejections: a rejected command answers with
// its error and the rest of its batch still applies; configuration entries
// advance the applied index without reaching the state; re-applied entries
// are no-ops.
func TestApplyBatchKeepsGoingPastRejections(t *testing.T) {
	f := testFSM(t)
	profile := &pb.ECProfile{DataShards: 2, ParityShards: 1, BlockSize: 1024}
	logs := []*raft.Log{
		cmdLog(t, 1, &pb.Command{Op: &pb.Command_CreateBucket{CreateBucket: &pb.CreateBucketRequest{Name: "bk1", DefaultProfile: profile}}}),
		cmdLog(t, 2, &pb.Command{Op: &pb.Command_CreateBucket{CreateBucket: &pb.CreateBucketRequest{Name: "bk1", DefaultProfile: profile}}}),
		{Index: 3, Term: 1, Type: raft.LogConfiguration, Data: []byte("not a command")},
		{Index: 4, Term: 1, Type: raft.LogCommand, Data: []byte{0xff, 0xff}},
		cmdLog(t, 5, &pb.Command{Op: &pb.Command_CreateBucket{CreateBucket: &pb.CreateBucketRequest{Name: "bk2", DefaultProfile: profile}}}),
	}
	res := f.ApplyBatch(logs)
	wantErr := []error{nil, ErrExists, nil, ErrInvalidArgument, nil}
	for i, want := range wantErr {
		r, _ := res[i].(*applyResult)
		var got error
		if r != nil {
			got = r.err
		}
		if (want == nil) != (got == nil) || (want != nil && !errors.Is(got, want)) {
			t.Errorf("entry %d: %v, want %v", i+1, got, want)
		}
	}
	if f.appliedIndex() != 5 {
		t.Fatalf("applied index %d, want 5", f.appliedIndex())
	}
	var buckets int
	f.view(func(tx *bolt.Tx) error { buckets = tx.Bucket(bktBuckets).Stats().KeyN; return nil })
	if buckets != 2 {
		t.Fatalf("%d buckets, want 2", buckets)
	}
	again := f.ApplyBatch(logs[:1])
	if r, _ := again[0].(*applyResult); r == nil || !errors.Is(r.err, errAlreadyApplied) {
		t.Fatalf("re-applied entry: %v", again[0])
	}
}

// TestRestoreReplacesState snapshots one FSM and restores it into another
// with different state: the second ends identical to the snapshot.
func TestRestoreReplacesState(t *testing.T) {
	a, b := testFSM(t), testFSM(t)
	profile := &pb.ECProfile{DataShards: 2, ParityShards: 1, BlockSize: 1024}
	a.ApplyBatch([]*raft.Log{cmdLog(t, 1, &pb.Command{Op: &pb.Command_CreateBucket{CreateBucket: &pb.CreateBucketRequest{Name: "aaa", DefaultProfile: profile}}})})
	b.ApplyBatch([]*raft.Log{
		cmdLog(t, 1, &pb.Command{Op: &pb.Command_CreateBucket{CreateBucket: &pb.CreateBucketRequest{Name: "bbb", DefaultProfile: profile}}}),
		cmdLog(t, 2, &pb.Command{Op: &pb.Command_CreateBucket{CreateBucket: &pb.CreateBucketRequest{Name: "ccc", DefaultProfile: profile}}}),
	})
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if err := b.Restore(sink.reader()); err != nil {
		t.Fatal(err)
	}
	na := &Node{fsm: a}
	nb := &Node{fsm: b}
	da, ia, _ := na.StateDigest()
	db, ib, _ := nb.StateDigest()
	if string(da) != string(db) || ia != ib || ib != 1 {
		t.Fatalf("restored state differs (applied %d vs %d)", ib, ia)
	}
	// A damaged snapshot is refused and the old state stays.
	damaged := append([]byte(nil), sink.buf...)
	damaged[20] ^= 0xff      // both meta pages: bbolt checksums these
	damaged[4096+20] ^= 0xff //
	for _, bad := range [][]byte{damaged, sink.buf[:len(sink.buf)/2]} {
		sink := &memSink{buf: bad}
		if err := b.Restore(sink.reader()); err == nil {
			t.Fatalf("a damaged snapshot of %d bytes (of %d) was restored", len(bad), len(sink.buf))
		}
	}
	if d, _, _ := nb.StateDigest(); string(d) != string(da) {
		t.Fatal("a refused restore changed the state")
	}
}

// FuzzApply feeds arbitrary bytes to the FSM as command entries: it must
// never panic nor stop the member (no fatal error), and the database must
// stay consistent.
func FuzzApply(f *testing.F) {
	profile := &pb.ECProfile{DataShards: 2, ParityShards: 1, BlockSize: 1024}
	for _, cmd := range []*pb.Command{
		{Op: &pb.Command_CreateBucket{CreateBucket: &pb.CreateBucketRequest{Name: "bk1", DefaultProfile: profile}}},
		{RequestId: make([]byte, 16), Op: &pb.Command_DeleteClip{DeleteClip: &pb.DeleteClipRequest{Bucket: "bk1", Key: "k"}}},
		{Op: &pb.Command_RegisterNode{RegisterNode: &pb.RegisterNodeRequest{NodeId: "s1", Address: "a"}}},
		{Op: &pb.Command_CommitPut{CommitPut: &pb.CommitPutCommand{Put: &pb.CommitPutRequest{Bucket: "bk1", Key: "k", Profile: profile}}}},
	} {
		b, _ := proto.Marshal(cmd)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := testFSM(t)
		setup := cmdLog(t, 1, &pb.Command{Op: &pb.Command_CreateBucket{CreateBucket: &pb.CreateBucketRequest{Name: "bk1", DefaultProfile: profile}}})
		fs.ApplyBatch([]*raft.Log{setup, {Index: 2, Term: 1, Type: raft.LogCommand, Data: data}})
		err := fs.view(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatalf("database inconsistent after applying %x: %v", data, err)
		}
	})
}

type memSink struct{ buf []byte }

func (s *memSink) Write(p []byte) (int, error) { s.buf = append(s.buf, p...); return len(p), nil }
func (s *memSink) Close() error                { return nil }
func (s *memSink) ID() string                  { return "mem" }
func (s *memSink) Cancel() error               { return nil }
func (s *memSink) reader() *readCloser         { return &readCloser{b: s.buf} }

type readCloser struct{ b []byte }

func (r *readCloser) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
func (r *readCloser) Close() error { return nil }
