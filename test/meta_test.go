package test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

var raftAddrRe = regexp.MustCompile(`\(raft (127\.0\.0\.1:\d+)\)`)

// metaMember is a `clipstore meta` process and how to start it again.
type metaMember struct {
	id, dir, raftAddr, grpcAddr string
	proc                        *process
	client                      pb.MetaServiceClient
}

func (m *metaMember) start(t *testing.T, extra ...string) {
	t.Helper()
	raft, grpcAddr := m.raftAddr, m.grpcAddr
	if raft == "" {
		raft, grpcAddr = "127.0.0.1:0", "127.0.0.1:0"
	}
	args := append([]string{"meta", "--id", m.id, "--data", m.dir, "--raft", raft, "--listen", grpcAddr,
		"--log-level", "debug", "--node-down-after", "1m",
		// The state file commits only when something reads it: applied
		// entries stay in memory, so a SIGKILL loses them and the restarted
		// member must re-apply them from its Raft log.
		"--state-batch-interval", "1h", "--state-batch-limit", "1000000"}, extra...)
	m.proc = start(t, args...)
	m.grpcAddr = m.proc.addr
	if sub := raftAddrRe.FindStringSubmatch(m.proc.log.String()); sub != nil {
		m.raftAddr = sub[1]
	}
	conn, err := grpc.NewClient(m.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	m.client = pb.NewMetaServiceClient(conn)
}

// retry repeats call while it fails with Unavailable (no leader yet), as a
// client does, for at most 20 s.
func retry(t *testing.T, call func(ctx context.Context) error) error {
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
		req.Shards = append(req.Shards, &pb.Shard{Index: tg.Index, NodeId: tg.NodeId, ShardId: tg.ShardId, Length: 1,
			State: pb.ShardState_SHARD_STATE_OK})
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
	members := make([]*metaMember, 3)
	for i := range members {
		members[i] = &metaMember{id: fmt.Sprintf("m%d", i), dir: filepath.Join(root, fmt.Sprintf("m%d", i))}
	}
	members[0].start(t, "--bootstrap")
	members[1].start(t, "--join", members[0].grpcAddr)
	members[2].start(t, "--join", members[0].grpcAddr)
	c := members[1].client
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(retry(t, func(ctx context.Context) error {
		_, err := c.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "fleet", RequestId: []byte("create-bucket-01")})
		return err
	}))
	for i := range 6 {
		id := fmt.Sprintf("s%d", i)
		must(retry(t, func(ctx context.Context) error {
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
		must(retry(t, func(ctx context.Context) (err error) {
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
	var leader *metaMember
	must(retry(t, func(ctx context.Context) error {
		resp, err := c.ListMembers(ctx, &pb.ListMembersRequest{})
		for _, m := range members {
			if err == nil && m.id == resp.LeaderId {
				leader = m
			}
		}
		if err == nil && leader == nil {
			err = status.Error(codes.Unavailable, "no leader yet")
		}
		return err
	}))
	leader.proc.kill()
	var survivor *metaMember
	for _, m := range members {
		if m != leader {
			survivor = m
		}
	}
	for i := range 20 {
		commit(survivor.client, fmt.Sprintf("after/%02d", i))
	}
	leader.start(t)
	checkAcked(t, members, "fleet", acked)
	converged(t, members, 40)

	for i := range 10 {
		commit(survivor.client, fmt.Sprintf("final/%02d", i))
	}
	for _, m := range members {
		m.proc.kill()
	}
	for _, m := range members {
		m.start(t)
	}
	checkAcked(t, members, "fleet", acked)
	converged(t, members, 50)
}

// checkAcked reads every acknowledged commit from every member: each key
// is at the generation its commit returned.
func checkAcked(t *testing.T, members []*metaMember, bucket string, acked map[string]uint64) {
	t.Helper()
	for _, m := range members {
		for key, gen := range acked {
			var got *pb.GetClipResponse
			err := retry(t, func(ctx context.Context) (err error) {
				got, err = m.client.GetClip(ctx, &pb.GetClipRequest{Bucket: bucket, Key: key})
				return err
			})
			if err != nil {
				t.Fatalf("%s: get %s: %v", m.id, key, err)
			}
			if got.Clip.Generation != gen {
				t.Fatalf("%s: %s at generation %d, acknowledged %d", m.id, key, got.Clip.Generation, gen)
			}
		}
	}
}

// converged waits until the members report the same applied index and
// clip count, and that count is clips.
func converged(t *testing.T, members []*metaMember, clips uint64) {
	t.Helper()
	waitUntil(t, 20*time.Second, "members to converge", func() bool {
		var first *pb.ClusterStatusResponse
		for _, m := range members {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := m.client.ClusterStatus(ctx, &pb.ClusterStatusRequest{Read: &pb.ReadOptions{Stale: true}})
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
