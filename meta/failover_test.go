package meta_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/rpcerr"
	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestFollowersServeEveryCall: writes sent to a follower are forwarded,
// linearizable reads on a follower see them at once, stale reads converge.
func TestFollowersServeEveryCall(t *testing.T) {
	c := metatest.New(t, 3, metatest.Options{})
	leader := c.WaitLeader()
	f := c.Followers()[0].Client
	if _, err := f.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, f, 6)
	for i := range 20 {
		key := fmt.Sprintf("k%02d", i)
		put(t, f, "bk1", key, uint64(1000*i), nil)
		// Linearizable read on the other follower: must see the write.
		other := c.Followers()[1].Client
		got, err := other.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: key})
		if err != nil {
			t.Fatalf("read-your-write through another follower: %v", err)
		}
		if got.Clip.Size != uint64(1000*i) {
			t.Fatalf("size %d, want %d", got.Clip.Size, 1000*i)
		}
	}
	list, err := c.Followers()[1].Client.ListClips(t.Context(), &pb.ListClipsRequest{Bucket: "bk1", PageSize: 7})
	if err != nil || len(list.Clips) != 7 || list.NextStartAfter != "k06" {
		t.Fatalf("page: %v, %v", list, err)
	}
	c.WaitConverged()
	stale, err := c.Followers()[0].Client.ListClips(t.Context(), &pb.ListClipsRequest{Bucket: "bk1", Read: &pb.ReadOptions{Stale: true}, PageSize: 100})
	if err != nil || len(stale.Clips) != 20 {
		t.Fatalf("stale list after convergence: %d clips, %v", len(stale.GetClips()), err)
	}
	members, err := c.Followers()[0].Client.ListMembers(t.Context(), &pb.ListMembersRequest{})
	if err != nil || len(members.Members) != 3 || members.LeaderId != leader.ID {
		t.Fatalf("members %v, %v", members, err)
	}
}

// TestLeaderLossKeepsAcknowledgedCommits kills the leader (no leadership
// transfer) under a stream of commits: a new leader is elected within three
// election timeouts, and every commit that was acknowledged reads back.
func TestLeaderLossKeepsAcknowledgedCommits(t *testing.T) {
	const election = 500 * time.Millisecond
	c := metatest.New(t, 3, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.ElectionTimeout, cfg.HeartbeatTimeout, cfg.LeaderLeaseTimeout = election, election, election
	}})
	leader := c.WaitLeader()
	cl := c.Followers()[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, cl, 6)

	var mu sync.Mutex
	acked := map[string]uint64{}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := c.Followers()[w%2].Client
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("w%d/%04d", w, i)
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				resp, err := tryPut(rctx, client, "bk1", key, 100, nil)
				cancel()
				if err == nil {
					mu.Lock()
					acked[key] = resp.Clip.Generation
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	leader.Crash()
	newLeader := c.WaitLeader()
	elapsed := time.Since(killed)
	time.Sleep(time.Second) // commits go on under the new leader
	stop()
	wg.Wait()
	if newLeader == leader {
		t.Fatal("the crashed member still leads")
	}
	if elapsed > 3*election+election {
		t.Errorf("new leader after %v; want within about 3 election timeouts (%v)", elapsed, 3*election)
	}
	t.Logf("new leader %s after %v; %d commits acknowledged", newLeader.ID, elapsed, len(acked))
	if len(acked) < 10 {
		t.Fatalf("only %d commits acknowledged", len(acked))
	}
	for key, gen := range acked {
		var got *pb.GetClipResponse
		err := retryUnavailable(t, func() (err error) {
			got, err = newLeader.Client.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: key})
			return err
		})
		if err != nil || got.Clip.Generation != gen {
			t.Fatalf("acknowledged %s (generation %d) after failover: %v, %v", key, gen, got, err)
		}
	}
	leader.Start(false)
	c.WaitConverged()
}

// TestRetriedCommitGetsFirstOutcome: the same request id returns the first
// outcome, success or failure, and never commits twice.
func TestRetriedCommitGetsFirstOutcome(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, cl, 6)
	begin, err := cl.BeginPut(t.Context(), &pb.BeginPutRequest{Bucket: "bk1", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	reqID := bytes.Repeat([]byte{7}, 16)
	commit := commitFor(begin, "bk1", "k", 123, reqID)
	first, err := cl.CommitPut(t.Context(), commit)
	if err != nil {
		t.Fatal(err)
	}
	again, err := cl.CommitPut(t.Context(), commit)
	if err != nil || again.Clip.Generation != first.Clip.Generation {
		t.Fatalf("retry: %v, %v; want generation %d", again, err, first.Clip.Generation)
	}
	commit.RequestId = bytes.Repeat([]byte{8}, 16)
	_, err = cl.CommitPut(t.Context(), commit)
	wantReason(t, err, codes.AlreadyExists, rpcerr.AlreadyExists)
	// A failed request id keeps failing the same way, code and reason, even
	// once the cause is gone.
	reqFail := bytes.Repeat([]byte{9}, 16)
	_, err = cl.DeleteClip(t.Context(), &pb.DeleteClipRequest{RequestId: reqFail, Bucket: "bk1", Key: "nope"})
	wantReason(t, err, codes.NotFound, rpcerr.NotFound)
	firstErr := err.Error()
	put(t, cl, "bk1", "nope", 1, nil)
	_, err = cl.DeleteClip(t.Context(), &pb.DeleteClipRequest{RequestId: reqFail, Bucket: "bk1", Key: "nope"})
	wantReason(t, err, codes.NotFound, rpcerr.NotFound)
	if err.Error() != firstErr {
		t.Fatalf("replayed answer %q, first %q", err, firstErr)
	}
	st, _ := cl.ClusterStatus(t.Context(), &pb.ClusterStatusRequest{})
	if st.Clips != 2 {
		t.Fatalf("%d clips, want 2", st.Clips)
	}
}

func TestCommitAfterDeadlineIsRefused(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.MaxUploadDuration = 50 * time.Millisecond
	}})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, cl, 6)
	begin, err := cl.BeginPut(t.Context(), &pb.BeginPutRequest{Bucket: "bk1", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	commit := commitFor(begin, "bk1", "k", 10, bytes.Repeat([]byte{3}, 16))
	_, err = cl.CommitPut(t.Context(), commit)
	wantReason(t, err, codes.FailedPrecondition, rpcerr.DeadlinePassed)
	_, err = cl.CommitPut(t.Context(), commit) // the remembered outcome keeps its reason
	wantReason(t, err, codes.FailedPrecondition, rpcerr.DeadlinePassed)
	_, err = cl.GetClip(t.Context(), &pb.GetClipRequest{Bucket: "bk1", Key: "k"})
	wantCode(t, err, codes.NotFound)
}

// TestBadRequestsChangeNothing: each malformed request gets a clear code
// and the state digest does not move.
func TestBadRequestsChangeNothing(t *testing.T) {
	c := metatest.New(t, 1, metatest.Options{})
	cl := c.Members[0].Client
	if _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, cl, 3)
	begin := func() *pb.BeginPutResponse {
		registerNodes(t, cl, 6)
		b, err := cl.BeginPut(t.Context(), &pb.BeginPutRequest{Bucket: "bk1", Key: "k"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	valid := commitFor(begin(), "bk1", "k", 4096, nil)
	mutate := func(f func(r *pb.CommitPutRequest)) error {
		r := commitFor(begin(), "bk1", "k", 4096, nil)
		f(r)
		_, err := cl.CommitPut(t.Context(), r)
		return err
	}
	long := string(bytes.Repeat([]byte("a"), 1025))
	cases := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"bucket name too short", func() error { _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "ab"}); return err }, codes.InvalidArgument},
		{"bucket name upper case", func() error {
			_, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "Fleet"})
			return err
		}, codes.InvalidArgument},
		{"bucket exists", func() error { _, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk1"}); return err }, codes.AlreadyExists},
		{"bad profile", func() error {
			_, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk2", DefaultProfile: &pb.ECProfile{DataShards: 60, ParityShards: 10, BlockSize: 1}})
			return err
		}, codes.InvalidArgument},
		{"unknown bucket", func() error {
			_, err := cl.BeginPut(t.Context(), &pb.BeginPutRequest{Bucket: "nope", Key: "k"})
			return err
		}, codes.NotFound},
		{"oversize key", func() error {
			_, err := cl.BeginPut(t.Context(), &pb.BeginPutRequest{Bucket: "bk1", Key: long})
			return err
		}, codes.InvalidArgument},
		{"NUL in key", func() error {
			_, err := cl.BeginPut(t.Context(), &pb.BeginPutRequest{Bucket: "bk1", Key: "a\x00b"})
			return err
		}, codes.InvalidArgument},
		{"too few nodes for the profile", func() error {
			// Unavailable while the leader is new (heartbeats may be on their
			// way), FailedPrecondition once it has heard from every node.
			return retryUnavailable(t, func() error {
				_, err := cl.BeginPut(t.Context(), &pb.BeginPutRequest{Bucket: "bk1", Key: "k", Profile: &pb.ECProfile{DataShards: 10, ParityShards: 4, BlockSize: 1 << 20}})
				return err
			})
		}, codes.FailedPrecondition},
		{"commit: short clip id", func() error { return mutate(func(r *pb.CommitPutRequest) { r.ClipId = r.ClipId[:8] }) }, codes.InvalidArgument},
		{"commit: shard length disagrees with size", func() error { return mutate(func(r *pb.CommitPutRequest) { r.Size++ }) }, codes.InvalidArgument},
		{"commit: below write quorum", func() error {
			return mutate(func(r *pb.CommitPutRequest) {
				for _, s := range r.Shards[:2] {
					s.State, s.NodeId = pb.ShardState_SHARD_STATE_MISSING, ""
				}
			})
		}, codes.FailedPrecondition},
		{"commit: two shards on one node", func() error { return mutate(func(r *pb.CommitPutRequest) { r.Shards[1].NodeId = r.Shards[0].NodeId }) }, codes.InvalidArgument},
		{"commit: unknown node", func() error { return mutate(func(r *pb.CommitPutRequest) { r.Shards[1].NodeId = "ghost" }) }, codes.InvalidArgument},
		{"commit: missing shard entry", func() error { return mutate(func(r *pb.CommitPutRequest) { r.Shards = r.Shards[:5] }) }, codes.InvalidArgument},
		{"commit: generation precondition", func() error {
			return mutate(func(r *pb.CommitPutRequest) { g := uint64(99); r.IfGenerationMatch = &g })
		}, codes.FailedPrecondition},
		{"commit: metadata too large", func() error {
			return mutate(func(r *pb.CommitPutRequest) {
				r.UserMetadata = map[string]string{"x": string(bytes.Repeat([]byte("v"), 9000))}
			})
		}, codes.InvalidArgument},
		{"delete unknown clip", func() error {
			_, err := cl.DeleteClip(t.Context(), &pb.DeleteClipRequest{Bucket: "bk1", Key: "k"})
			return err
		}, codes.NotFound},
		{"bad request id", func() error {
			_, err := cl.CreateBucket(t.Context(), &pb.CreateBucketRequest{Name: "bk3", RequestId: []byte{1}})
			return err
		}, codes.InvalidArgument},
		{"heartbeat unregistered", func() error { _, err := cl.Heartbeat(t.Context(), &pb.HeartbeatRequest{NodeId: "ghost"}); return err }, codes.FailedPrecondition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _, _ := c.Members[0].Node.StateDigest()
			wantCode(t, tc.call(), tc.want)
			after, _, _ := c.Members[0].Node.StateDigest()
			if !bytes.Equal(before, after) {
				t.Fatal("a refused request changed the state")
			}
		})
	}
	if _, err := cl.CommitPut(t.Context(), valid); err != nil {
		t.Fatalf("the valid commit after all that: %v", err)
	}
	_, err := cl.DeleteBucket(t.Context(), &pb.DeleteBucketRequest{Name: "bk1"})
	wantCode(t, err, codes.FailedPrecondition)
}

// retryUnavailable retries call while it fails with Unavailable (no leader
// yet, leadership moving), for at most 10 s, as a client would.
func retryUnavailable(t testing.TB, call func() error) error {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := call()
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
