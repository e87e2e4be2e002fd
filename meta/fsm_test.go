package meta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
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

// openFSMAt opens the FSM file at path with a group commit that only a
// read, a snapshot, close or the entry limit ends.
func openFSMAt(t *testing.T, path string, limit int) *fsm {
	t.Helper()
	f, err := openFSM(path, slog.New(slog.DiscardHandler), fsmOptions{requestTTL: time.Hour,
		fatal: func(err error) { t.Fatalf("fatal FSM error: %v", err) }, commitInterval: time.Hour, commitEntries: limit})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// crash drops the open write transaction and closes the file without
// committing it, as a killed process would.
func (f *fsm) crash() {
	f.stopLoop()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.wtx != nil {
		f.wtx.Rollback()
		f.wtx = nil
	}
	f.db.Close()
	f.db = nil
}

func bucketLogs(t *testing.T, from, to uint64) []*raft.Log {
	profile := &pb.ECProfile{DataShards: 2, ParityShards: 1, BlockSize: 1024}
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, cmdLog(t, i, &pb.Command{Op: &pb.Command_CreateBucket{CreateBucket: &pb.CreateBucketRequest{
			Name: fmt.Sprintf("bk%04d", i), DefaultProfile: profile}}}))
	}
	return logs
}

// TestGroupCommit: applied entries wait in one open transaction and are
// answered at once; reads see them (a read commits first); the entry limit
// and a snapshot commit them; entries lost with the open transaction in a
// crash are re-applied from the log to the very state a member that never
// crashed has.
func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	f := openFSMAt(t, path, 25)
	for from := uint64(1); from <= 40; from += 10 { // commits once, at 30 entries
		for _, r := range f.ApplyBatch(bucketLogs(t, from, from+9)) {
			if r, _ := r.(*applyResult); r == nil || r.err != nil {
				t.Fatalf("apply: %+v", r)
			}
		}
	}
	if f.appliedIndex() != 40 {
		t.Fatalf("applied index %d, want 40", f.appliedIndex())
	}
	f.crash()
	f = openFSMAt(t, path, 25)
	if got := f.appliedIndex(); got != 30 {
		t.Fatalf("after a crash the file is at index %d, want 30 (the entry limit's commit)", got)
	}
	// Raft replays the log from the newest snapshot's index (none: 1).
	res := f.ApplyBatch(bucketLogs(t, 1, 45))
	for i, r := range res {
		r, _ := r.(*applyResult)
		if already := i < 30; r == nil || (already != errors.Is(r.err, errAlreadyApplied)) || (!already && r.err != nil) {
			t.Fatalf("replayed entry %d: %+v", i+1, r)
		}
	}
	var buckets int
	f.view(func(tx *bolt.Tx) error { buckets = tx.Bucket(bktBuckets).Stats().KeyN; return nil })
	if buckets != 45 {
		t.Fatalf("%d buckets after replay, want 45", buckets)
	}

	ref := testFSM(t) // never crashed, commits every 20 ms
	ref.ApplyBatch(bucketLogs(t, 1, 45))
	want, _, _ := (&Node{fsm: ref}).StateDigest()
	got, applied, _ := (&Node{fsm: f}).StateDigest()
	if string(got) != string(want) || applied != 45 {
		t.Fatalf("replayed state differs from a member that never crashed (applied %d)", applied)
	}

	// A short read sees applied entries without committing them.
	f.ApplyBatch(bucketLogs(t, 46, 48))
	var seen bool
	f.viewApplied(func(tx *bolt.Tx) error { seen = tx.Bucket(bktBuckets).Get([]byte("bk0048")) != nil; return nil })
	f.wmu.Lock()
	pending := f.wtx != nil
	f.wmu.Unlock()
	if !seen || !pending {
		t.Fatalf("viewApplied: saw the last entry %v, transaction still open %v; want both", seen, pending)
	}

	f.ApplyBatch(bucketLogs(t, 49, 50))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	snap.Release()
	f.crash()
	f = openFSMAt(t, path, 25)
	defer f.close()
	if got := f.appliedIndex(); got != 50 {
		t.Fatalf("a snapshot left the file at index %d, want 50", got)
	}
}

// TestGroupCommitInterval: with nothing reading, the open transaction
// commits once it is commitInterval old.
func TestGroupCommitInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	f, err := openFSM(path, slog.New(slog.DiscardHandler), fsmOptions{requestTTL: time.Hour,
		fatal: func(err error) { t.Fatalf("fatal FSM error: %v", err) }, commitInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.ApplyBatch(bucketLogs(t, 1, 5))
	await.True(t, 5*time.Second, "the open transaction to commit", func() bool {
		f.wmu.Lock()
		defer f.wmu.Unlock()
		return f.wtx == nil
	})
	f.crash()
	f = openFSMAt(t, path, 25)
	defer f.close()
	if got := f.appliedIndex(); got != 5 {
		t.Fatalf("file at index %d, want 5", got)
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
		{Op: &pb.Command_CreateUpload{CreateUpload: &pb.CreateUploadRequest{Bucket: "bk1", Key: "k", Profile: profile,
			UploadId: bytes.Repeat([]byte{1}, 16), ClipId: bytes.Repeat([]byte{2}, 16)}}},
		{Op: &pb.Command_CommitPart{CommitPart: &pb.CommitPartRequest{Bucket: "bk1", Key: "k", UploadId: bytes.Repeat([]byte{1}, 16), Number: 1}}},
		{Op: &pb.Command_CompleteUpload{CompleteUpload: &pb.CompleteUploadRequest{Bucket: "bk1", Key: "k", UploadId: bytes.Repeat([]byte{1}, 16),
			Parts: []*pb.CompletedPart{{Number: 1}}}}},
		{Op: &pb.Command_AbortUpload{AbortUpload: &pb.AbortUploadRequest{Bucket: "bk1", Key: "k", UploadId: bytes.Repeat([]byte{1}, 16)}}},
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

// TestWaitApplied: a wait for an index the FSM holds returns at once, one
// for a later index returns when ApplyBatch gets there, and one that the
// FSM does not reach fails with ErrUnavailable at its deadline.
func TestWaitApplied(t *testing.T) {
	f := testFSM(t)
	f.ApplyBatch(bucketLogs(t, 1, 3))
	if err := f.waitApplied(3, time.Now()); err != nil {
		t.Fatalf("wait for an applied index: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- f.waitApplied(5, time.Now().Add(10*time.Second)) }()
	time.Sleep(20 * time.Millisecond)
	f.ApplyBatch(bucketLogs(t, 4, 5))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("wait woken by ApplyBatch: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the wait was not woken by ApplyBatch")
	}
	start := time.Now()
	err := f.waitApplied(9, time.Now().Add(50*time.Millisecond))
	if !errors.Is(err, ErrUnavailable) || time.Since(start) > 2*time.Second {
		t.Fatalf("wait past the deadline: %v after %v, want ErrUnavailable at about 50 ms", err, time.Since(start))
	}
}
