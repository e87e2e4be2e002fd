package meta

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"github.com/clipstore/clipstore/test/e2e"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// commitClip runs BeginPut and CommitPut as a client would once its shards
// are written (the storage side is exercised by the storage tests).
func commitClip(ctx context.Context, c pb.MetaServiceClient, bucket, key string, reqID []byte) (*pb.CommitPutResponse, error) {
	begin, err := c.BeginPut(ctx, &pb.BeginPutRequest{Bucket: bucket, Key: key})
	if err != nil {
		return nil, err
	}
	req := &pb.CommitPutRequest{RequestId: reqID, Bucket: bucket, Key: key, UploadId: begin.UploadId, ClipId: begin.ClipId,
		CommitDeadlineUnixNano: begin.CommitDeadlineUnixNano, Size: 4, Profile: begin.Profile}
	for _, tg := range begin.Targets {
		s := &pb.Shard{Index: tg.Index, NodeId: tg.NodeId, ShardId: tg.ShardId, Length: 1, State: pb.ShardState_SHARD_STATE_OK}
		if tg.NodeId == "" {
			// A leader elected a moment ago may not have heard from every
			// node yet: the shard is recorded missing, as a client does.
			s.State, s.Length = pb.ShardState_SHARD_STATE_MISSING, 0
		}
		req.Shards = append(req.Shards, s)
	}
	return c.CommitPut(ctx, req)
}

// TestMetaClusterSurvivesLeaderKill runs three `clipstore meta` processes,
// SIGKILLs the leader while clips are committed through a follower,
// restarts it, and checks that every acknowledged commit is readable from
// every member and that the members agree. Then it SIGKILLs all three right
// after more commits, before anything reads them, and checks the same
// again after a restart.
func TestMetaClusterSurvivesLeaderKill(t *testing.T) {
	root := t.TempDir()
	members := make([]*e2e.MetaMember, 3)
	for i := range members {
		members[i] = &e2e.MetaMember{ID: fmt.Sprintf("m%d", i), Dir: filepath.Join(root, fmt.Sprintf("m%d", i))}
	}
	members[0].Start(t, "--bootstrap")
	members[1].Start(t, "--join", members[0].GRPCAddr)
	members[2].Start(t, "--join", members[0].GRPCAddr)
	c := members[1].Client
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e2e.Retry(t, func(ctx context.Context) error {
		_, err := c.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "fleet", RequestId: []byte("create-bucket-01")})
		return err
	}))
	for i := range 6 {
		id := fmt.Sprintf("s%d", i)
		must(e2e.Retry(t, func(ctx context.Context) error {
			_, err := c.RegisterNode(ctx, &pb.RegisterNodeRequest{NodeId: id, Address: "127.0.0.1:1", Zone: fmt.Sprint(i % 3)})
			if err == nil {
				_, err = c.Heartbeat(ctx, &pb.HeartbeatRequest{NodeId: id, Free: 1 << 40})
			}
			return err
		}))
	}
	acked := map[string]uint64{}
	commit := func(client pb.MetaServiceClient, key string) {
		reqID := []byte(fmt.Sprintf("%-16.16s", key))
		var resp *pb.CommitPutResponse
		must(e2e.Retry(t, func(ctx context.Context) (err error) {
			// Storage nodes heartbeat every second; a new leader places
			// shards only on nodes it has heard from.
			for i := range 6 {
				if _, err := client.Heartbeat(ctx, &pb.HeartbeatRequest{NodeId: fmt.Sprintf("s%d", i), Free: 1 << 40}); err != nil {
					return err
				}
			}
			resp, err = commitClip(ctx, client, "fleet", key, reqID)
			return err
		}))
		acked[key] = resp.Clip.Generation
	}
	for i := range 20 {
		commit(c, fmt.Sprintf("before/%02d", i))
	}
	var leader *e2e.MetaMember
	must(e2e.Retry(t, func(ctx context.Context) error {
		resp, err := c.ListMembers(ctx, &pb.ListMembersRequest{})
		for _, m := range members {
			if err == nil && m.ID == resp.LeaderId {
				leader = m
			}
		}
		if err == nil && leader == nil {
			err = status.Error(codes.Unavailable, "no leader yet")
		}
		return err
	}))
	leader.Proc.Kill()
	var survivor *e2e.MetaMember
	for _, m := range members {
		if m != leader {
			survivor = m
		}
	}
	for i := range 20 {
		commit(survivor.Client, fmt.Sprintf("after/%02d", i))
	}
	leader.Start(t)
	checkAcked(t, members, "fleet", acked)
	converged(t, members, 40)

	for i := range 10 {
		commit(survivor.Client, fmt.Sprintf("final/%02d", i))
	}
	for _, m := range members {
		m.Proc.Kill()
	}
	for _, m := range members {
		m.Start(t)
	}
	checkAcked(t, members, "fleet", acked)
	converged(t, members, 50)
}

// checkAcked reads every acknowledged commit from every member: each key
// is at the generation its commit returned.
func checkAcked(t *testing.T, members []*e2e.MetaMember, bucket string, acked map[string]uint64) {
	t.Helper()
	for _, m := range members {
		for key, gen := range acked {
			var got *pb.GetClipResponse
			err := e2e.Retry(t, func(ctx context.Context) (err error) {
				got, err = m.Client.GetClip(ctx, &pb.GetClipRequest{Bucket: bucket, Key: key})
				return err
			})
			if err != nil {
				t.Fatalf("%s: get %s: %v", m.ID, key, err)
			}
			if got.Clip.Generation != gen {
				t.Fatalf("%s: %s at generation %d, acknowledged %d", m.ID, key, got.Clip.Generation, gen)
			}
		}
	}
}

// converged waits until the members report the same applied index and
// clip count, and that count is clips.
func converged(t *testing.T, members []*e2e.MetaMember, clips uint64) {
	t.Helper()
	await.True(t, 20*time.Second, "members to converge", func() bool {
		var first *pb.ClusterStatusResponse
		for _, m := range members {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := m.Client.ClusterStatus(ctx, &pb.ClusterStatusRequest{Read: &pb.ReadOptions{Stale: true}})
			cancel()
			if err != nil {
				return false
			}
			if first == nil {
				first = st
			} else if st.AppliedIndex != first.AppliedIndex || st.Clips != first.Clips {
				return false
			}
		}
		return first.Clips == clips
	})
}
