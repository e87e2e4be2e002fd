package meta_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/rpcerr"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestMain checks that no test leaves a goroutine behind, except one of
// raft's own and the one that waits for it: a leadership transfer begun
// just before a shutdown waits up to its RPC timeout (5 s) for the
// target's TimeoutNow answer, which a target that shut down never sends,
// and raft's Shutdown does not wait for it; nor is its future resolved
// before, so transferOnShutdown's waiter outlives the member as long.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/hashicorp/raft.(*Raft).leadershipTransfer"),
		goleak.IgnoreAnyFunction("github.com/clipstore/clipstore/meta.(*Node).transferOnShutdown.func1"),
		goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*Raft).leaderLoop.func2"))
}

func wantCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got %v (%v), want %v", got, err, want)
	}
}

// wantReason checks an answer's code and the reason of its ErrorInfo.
func wantReason(t testing.TB, err error, code codes.Code, reason rpcerr.Reason) {
	t.Helper()
	wantCode(t, err, code)
	if info := rpcerr.Info(err); info == nil || rpcerr.Reason(info.Reason) != reason || info.Domain != rpcerr.MetaDomain {
		t.Fatalf("error %v carries %v, want reason %s in domain %s", err, info, reason, rpcerr.MetaDomain)
	}
}

// registerNodes registers n storage nodes in zones z0..z2 and heartbeats
// them once, as storage nodes do, so that the leader can place shards.
func registerNodes(t testing.TB, c pb.MetaServiceClient, n int) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("s%d", i)
		_, err := c.RegisterNode(t.Context(), &pb.RegisterNodeRequest{NodeId: id, Address: fmt.Sprintf("127.0.0.1:%d", 7400+i), Zone: fmt.Sprintf("z%d", i%3)})
		if err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
	}
	heartbeatAll(t, c, n)
}

func heartbeatAll(t testing.TB, c pb.MetaServiceClient, n int) {
	t.Helper()
	for i := range n {
		if _, err := c.Heartbeat(t.Context(), &pb.HeartbeatRequest{NodeId: fmt.Sprintf("s%d", i), Capacity: 100 << 30, Free: 50 << 30}); err != nil {
			t.Fatalf("heartbeat s%d: %v", i, err)
		}
	}
}

// report sends a heartbeat carrying a report, as storage nodes do: numbered
// one past the node's last applied report, re-sent until an answer
// acknowledges it (meta applies reports asynchronously).
func report(t testing.TB, c pb.MetaServiceClient, req *pb.HeartbeatRequest) {
	t.Helper()
	resp, err := c.Heartbeat(t.Context(), &pb.HeartbeatRequest{NodeId: req.NodeId, Free: req.Free})
	if err != nil {
		t.Fatal(err)
	}
	req.ReportSeq = resp.ReportSeqApplied + 1
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Heartbeat(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ReportSeqApplied >= req.ReportSeq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("report %d of %s not acknowledged within 10s (last applied %d)", req.ReportSeq, req.NodeId, resp.ReportSeqApplied)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// put stores a clip record the way a client does: BeginPut, then a
// CommitPut naming every target as written.
func put(t testing.TB, c pb.MetaServiceClient, bucket, key string, size uint64, reqID []byte) *pb.CommitPutResponse {
	t.Helper()
	resp, err := tryPut(t.Context(), c, bucket, key, size, reqID)
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	return resp
}

func tryPut(ctx context.Context, c pb.MetaServiceClient, bucket, key string, size uint64, reqID []byte) (*pb.CommitPutResponse, error) {
	begin, err := c.BeginPut(ctx, &pb.BeginPutRequest{Bucket: bucket, Key: key})
	if err != nil {
		return nil, err
	}
	return c.CommitPut(ctx, commitFor(begin, bucket, key, size, reqID))
}

func commitFor(begin *pb.BeginPutResponse, bucket, key string, size uint64, reqID []byte) *pb.CommitPutRequest {
	req := &pb.CommitPutRequest{RequestId: reqID, Bucket: bucket, Key: key, UploadId: begin.UploadId, ClipId: begin.ClipId,
		CommitDeadlineUnixNano: begin.CommitDeadlineUnixNano, Size: size, Profile: begin.Profile}
	k := uint64(begin.Profile.DataShards)
	bs := uint64(begin.Profile.BlockSize)
	var length uint64
	if size > 0 {
		blocks := (size + bs - 1) / bs
		length = (blocks-1)*((bs+k-1)/k) + (size-(blocks-1)*bs+k-1)/k
	}
	for _, tg := range begin.Targets {
		s := &pb.Shard{Index: tg.Index, NodeId: tg.NodeId, ShardId: tg.ShardId, Length: length, State: pb.ShardState_SHARD_STATE_OK}
		if tg.NodeId == "" {
			s.State, s.Length = pb.ShardState_SHARD_STATE_MISSING, 0
		}
		req.Shards = append(req.Shards, s)
	}
	return req
}

func TestSingleMemberLifecycle(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "fleet-video"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, cl, 6)
	first := put(t, cl, "fleet-video", "car1/cam0/0001.mp4", 10<<20, nil)
	got, err := cl.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "fleet-video", Key: "car1/cam0/0001.mp4"})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Clip, first.Clip) || len(got.Nodes) != 6 {
		t.Fatalf("GetClip %v, want %v on 6 nodes", got, first.Clip)
	}
	second := put(t, cl, "fleet-video", "car1/cam0/0001.mp4", 5<<20, nil)
	if second.ReplacedGeneration != first.Clip.Generation || second.Clip.Generation <= first.Clip.Generation {
		t.Fatalf("overwrite: replaced %d (want %d), new generation %d", second.ReplacedGeneration, first.Clip.Generation, second.Clip.Generation)
	}
	// The replaced shards are each node's work now.
	deletes := 0
	for i := range 6 {
		hb, err := cl.Heartbeat(t.Context(), &pb.HeartbeatRequest{NodeId: fmt.Sprintf("s%d", i), Free: 50 << 30})
		if err != nil {
			t.Fatal(err)
		}
		deletes += len(hb.Deletes)
		var ids [][]byte
		for _, d := range hb.Deletes {
			ids = append(ids, d.ShardId)
		}
		report(t, cl, &pb.HeartbeatRequest{NodeId: fmt.Sprintf("s%d", i), Free: 50 << 30, DeletedShardIds: ids})
	}
	if deletes != 6 {
		t.Fatalf("%d deletes handed out after an overwrite, want 6", deletes)
	}
	st, err := cl.ClusterStatus(t.Context(), &pb.ClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Clips != 1 || st.PendingDeletes != 0 || st.StorageNodesUp != 6 || st.LeaderId != "m0" {
		t.Fatalf("status %v", st)
	}
	before, _, _ := c.Members[0].Node.StateDigest()
	c.Members[0].Stop()
	c.Members[0].Start(true)
	c.WaitLeader()
	after, _, _ := c.Members[0].Node.StateDigest()
	if string(before) != string(after) {
		t.Fatal("state changed across a restart")
	}
	got, err = c.Members[0].Client.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "fleet-video", Key: "car1/cam0/0001.mp4"})
	if err != nil || !proto.Equal(got.Clip, second.Clip) {
		t.Fatalf("after restart: %v, %v", got, err)
	}
}
