package tls

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/internal/callauth"
	"github.com/clipstore/clipstore/internal/capability"
	pb "github.com/clipstore/clipstore/proto/metapb"
	storagepb "github.com/clipstore/clipstore/proto/storagepb"
	"github.com/clipstore/clipstore/test/e2e"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestTLSCluster: 3 meta members and 7 storage nodes with TLS on every
// link. Puts and gets through the CLI, a repair after a storage node is
// killed, a drain and a deep fsck all work; a client without a
// certificate, one with a certificate of another CA, a client certificate
// calling a cluster RPC, a storage node with a client certificate and a
// meta member with a storage certificate are all refused, and the last
// does not disturb the Raft group.
func TestTLSCluster(t *testing.T) {
	dir := t.TempDir()
	secretsKey := filepath.Join(dir, "secrets-key")
	if err := os.WriteFile(secretsKey, []byte("a-secrets-key-for-the-tls-tests-of-32-bytes-or-more\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := e2e.StartCluster(t, e2e.ClusterOptions{StorageNodes: 7, TLS: true, RequireAuth: true,
		MetaArgs: []string{"--node-down-after", "2s", "--repair-after", "1s", "--gc-grace", "0s", "--secrets-key-file", secretsKey,
			"--audit-log", filepath.Join(dir, "audit.log")}})
	if out, errOut, code := c.CLI("mb", "clips"); code != 0 {
		t.Fatalf("mb: %s %s", out, errOut)
	}
	var keys []string
	for i := range 4 {
		data := e2e.ClipBytes(uint64(i), 300_000+i*77_777)
		path := filepath.Join(dir, fmt.Sprintf("clip%d", i))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("clips/car1/%d.mp4", i)
		if _, errOut, code := c.CLI("put", key, path); code != 0 {
			t.Fatalf("put over TLS: %s", errOut)
		}
		back := path + ".back"
		if _, errOut, code := c.CLI("get", key, back); code != 0 {
			t.Fatalf("get over TLS: %s", errOut)
		}
		if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s read back %d bytes (%v), want the %d written", key, len(got), err, len(data))
		}
		keys = append(keys, strings.TrimPrefix(key, "clips/"))
	}
	cl := c.Client()

	t.Run("repair", func(t *testing.T) {
		victim := c.Storage[1]
		victim.Proc.Kill()
		await.TrueWhy(t, 60*time.Second, "every clip k+m OK off "+victim.ID, func() (bool, string) {
			return e2e.ClipsFull(cl, "clips", keys, map[string]bool{victim.ID: true})
		})
		c.StartStorage(victim)
		c.WaitNodesUp(7)
	})
	t.Run("drain", func(t *testing.T) {
		drained := c.Storage[2].ID
		if _, errOut, code := c.CLI("admin", "node", "drain", drained, "--wait", "--timeout", "2m"); code != 0 {
			t.Fatalf("drain: %s", errOut)
		}
		if ok, why := e2e.ClipsFull(cl, "clips", keys, map[string]bool{drained: true}); !ok {
			t.Fatal(why)
		}
	})
	t.Run("fsck", func(t *testing.T) {
		await.TrueWhy(t, 30*time.Second, "fsck --deep clean", c.FsckClean)
	})

	t.Run("access keys", func(t *testing.T) {
		// Every call above was signed with the root key. Without a key,
		// the certificate alone gets nothing, and the CLI says why in one
		// line.
		_, errOut, code := e2e.CLI(t, c.TLS.Env("client"), "ls", "clips", "--meta", c.MetaAddrs(), "--timeout", "10s")
		if code == 0 || !strings.Contains(errOut, "signed with an access key") || strings.Contains(strings.TrimSpace(errOut), "\n") {
			t.Fatalf("ls without a key: exit %d, %q; want one line saying a signed call is needed", code, errOut)
		}
		// A key that may read the bucket reads it, and nothing more.
		out, errOut, code := c.CLI("admin", "keys", "create", "trainer", "--allow", "clips:read", "--json")
		if code != 0 {
			t.Fatalf("keys create: %s", errOut)
		}
		keyFile := filepath.Join(t.TempDir(), "trainer.json")
		if err := os.WriteFile(keyFile, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		env := append(c.TLS.Env("client"), "CLIPSTORE_KEY_FILE="+keyFile)
		back := filepath.Join(t.TempDir(), "back")
		if _, errOut, code := e2e.CLI(t, env, "get", "clips/car1/0.mp4", back, "--meta", c.MetaAddrs(), "--timeout", "20s"); code != 0 {
			t.Fatalf("get with a read key: %s", errOut)
		}
		if got, _ := os.ReadFile(back); !bytes.Equal(got, e2e.ClipBytes(0, 300_000)) {
			t.Fatal("the read key read back other bytes")
		}
		for _, refused := range []struct {
			args []string
			want string
		}{
			{[]string{"put", "clips/car1/new.mp4", back}, `no write access to bucket "clips"`},
			{[]string{"rm", "clips/car1/0.mp4"}, `no write access to bucket "clips"`},
			{[]string{"mb", "other"}, `no admin access to bucket "other"`},
			{[]string{"admin", "node", "drain", c.Storage[3].ID}, "not a cluster admin"},
			{[]string{"admin", "keys", "ls"}, "not a cluster admin"},
		} {
			_, errOut, code := e2e.CLI(t, env, append(refused.args, "--meta", c.MetaAddrs(), "--timeout", "20s")...)
			if code == 0 || !strings.Contains(errOut, refused.want) || strings.Contains(strings.TrimSpace(errOut), "\n") {
				t.Errorf("%v with a read key: exit %d, %q; want one line with %q", refused.args, code, errOut, refused.want)
			}
		}
		if _, errOut, code := c.CLI("stat", "clips/car1/0.mp4"); code != 0 {
			t.Fatalf("the refused rm changed something: %s", errOut)
		}

		// Storage nodes know no keys: they take a shard stream only with
		// meta's capability. The trainer's token for a clip of bucket clips
		// does not read a shard of bucket private, even with its id and
		// node at hand; no token reads nothing; a read token writes nothing.
		var trainer struct {
			ID     string `json:"access_key_id"`
			Secret string `json:"secret_access_key"`
		}
		if err := json.Unmarshal([]byte(out), &trainer); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code := c.CLI("mb", "private"); code != 0 {
			t.Fatalf("mb private: %s", errOut)
		}
		secretClip := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(secretClip, e2e.ClipBytes(99, 200_000), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code := c.CLI("put", "private/secret.mp4", secretClip); code != 0 {
			t.Fatalf("put private: %s", errOut)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		mine := getClipAs(ctx, t, c, trainer.ID, trainer.Secret, "clips", "car1/0.mp4")
		theirs := getClipAs(ctx, t, c, c.RootKey[0], c.RootKey[1], "private", "secret.mp4")
		if len(mine.Capability) == 0 {
			t.Fatal("GetClip on a cluster with --require-auth gave no capability")
		}
		theirShard, theirAddr := firstShard(theirs)
		myShard, myAddr := firstShard(mine)
		for _, tc := range []struct {
			name         string
			addr         string
			shard, token []byte
			want         codes.Code
		}{
			{"its own clip's shard", myAddr, myShard, mine.Capability, codes.OK},
			{"another bucket's shard with its token", theirAddr, theirShard, mine.Capability, codes.PermissionDenied},
			{"no token", myAddr, myShard, nil, codes.Unauthenticated},
			{"a forged token", myAddr, myShard, forge(mine.Capability), codes.Unauthenticated},
		} {
			if got := readShardWith(ctx, t, c, tc.addr, tc.shard, tc.token); got != tc.want {
				t.Errorf("ReadShard of %s: %v, want %v", tc.name, got, tc.want)
			}
		}
		if got := writeShardWith(ctx, t, c, myAddr, mine); got != codes.PermissionDenied {
			t.Errorf("WriteShard with a read token: %v, want PermissionDenied", got)
		}
	})

	t.Run("s3 gateway", func(t *testing.T) {
		// The gateway's certificate (its role) gets it signing keys: no
		// cluster secret; it serves HTTPS with the same certificate.
		gw := e2e.Start(t, append([]string{"s3", "--listen", "127.0.0.1:0", "--meta", c.MetaAddrs(), "--log-level", "debug"},
			c.TLS.Flags("gateway")...)...)
		out, errOut, code := c.CLI("admin", "keys", "create", "tls-test", "--allow", "clips:read", "--json")
		if code != 0 {
			t.Fatalf("keys create: %s", errOut)
		}
		var key struct {
			ID     string `json:"access_key_id"`
			Secret string `json:"secret_access_key"`
		}
		if err := json.Unmarshal([]byte(out), &key); err != nil {
			t.Fatal(err)
		}
		aws := exec.Command("/usr/bin/aws", "--endpoint-url", "https://"+gw.Addr, "--ca-bundle", filepath.Join(c.TLS.Dir, "ca.crt"),
			"s3", "cp", "s3://clips/car1/0.mp4", "-")
		aws.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin", "AWS_ACCESS_KEY_ID=" + key.ID, "AWS_SECRET_ACCESS_KEY=" + key.Secret,
			"AWS_DEFAULT_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"}
		var stdout, stderr bytes.Buffer
		aws.Stdout, aws.Stderr = &stdout, &stderr
		if err := aws.Run(); err != nil || !bytes.Equal(stdout.Bytes(), e2e.ClipBytes(0, 300_000)) {
			t.Fatalf("aws s3 cp over HTTPS: %v, %d bytes: %s", err, stdout.Len(), stderr.String())
		}
		// A gateway with a client certificate gets no signing key.
		rogue := e2e.Start(t, append([]string{"s3", "--listen", "127.0.0.1:0", "--meta", c.MetaAddrs(), "--log-level", "debug"},
			c.TLS.Flags("client")...)...)
		aws = exec.Command("/usr/bin/aws", "--endpoint-url", "https://"+rogue.Addr, "--no-verify-ssl", "s3", "ls", "s3://clips/")
		aws.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin", "AWS_ACCESS_KEY_ID=" + key.ID, "AWS_SECRET_ACCESS_KEY=" + key.Secret,
			"AWS_DEFAULT_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "AWS_MAX_ATTEMPTS=1"}
		stderr.Reset()
		aws.Stderr = &stderr
		if err := aws.Run(); err == nil {
			t.Fatal("a gateway with a client certificate served a request")
		}
	})

	t.Run("refused", func(t *testing.T) {
		// No certificate: plain text to a TLS server.
		_, errOut, code := e2e.CLI(t, nil, "ls", "clips", "--meta", c.MetaAddrs(), "--timeout", "5s")
		if code == 0 {
			t.Errorf("a client without TLS listed the bucket: %s", errOut)
		}
		// A certificate of another CA.
		other := e2e.MakeTLSCerts(t, filepath.Join(t.TempDir(), "other"))
		_, errOut, code = e2e.CLI(t, other.Env("client"), "ls", "clips", "--meta", c.MetaAddrs(), "--timeout", "5s")
		if code == 0 {
			t.Errorf("a client of another CA listed the bucket: %s", errOut)
		}
		// A client certificate calling the cluster's own RPCs.
		m := c.Metas[0]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := m.Client.RegisterNode(ctx, &pb.RegisterNodeRequest{NodeId: "intruder", Address: "127.0.0.1:1"})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "role") {
			t.Errorf("RegisterNode with a client certificate: %v, want PermissionDenied naming the role", err)
		}
		_, err = m.Client.JoinMember(ctx, &pb.JoinMemberRequest{Id: "m9", GrpcAddress: "127.0.0.1:1", RaftAddress: "127.0.0.1:2"})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("JoinMember with a client certificate: %v, want PermissionDenied", err)
		}
		// A storage node with a client certificate cannot register.
		intruder := e2e.Start(t, append([]string{"storage", "--id", "intruder", "--data", filepath.Join(t.TempDir(), "intruder"),
			"--listen", "127.0.0.1:0", "--meta", c.MetaAddrs(), "--log-level", "debug"}, c.TLS.Flags("client")...)...)
		time.Sleep(3 * time.Second) // several registration attempts
		st, err := cl.ClusterStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range st.Nodes {
			if n.ID == "intruder" {
				t.Errorf("a storage node with a client certificate registered: %+v", n)
			}
		}
		intruder.Kill()

		// A meta member with a storage certificate cannot join, and the
		// group's term does not rise.
		_, term := c.MetaLeader(cl)
		_, errOut, code = e2e.CLI(t, nil, append([]string{"meta", "--id", "m9", "--data", filepath.Join(t.TempDir(), "m9"), "--raft", "127.0.0.1:0",
			"--listen", "127.0.0.1:0", "--join", c.Metas[0].GRPCAddr, "--log-level", "warn"}, c.TLS.Flags("storage")...)...)
		if code == 0 || !strings.Contains(errOut, "PermissionDenied") && !strings.Contains(errOut, "role") {
			t.Errorf("a meta member with a storage certificate: exit %d: %s", code, errOut)
		}
		time.Sleep(2 * time.Second)
		if _, now := c.MetaLeader(cl); now != term {
			t.Errorf("the term rose from %d to %d", term, now)
		}
		if st, err := cl.ClusterStatus(ctx); err != nil || len(st.Members) != 3 {
			t.Errorf("members after the refused join: %v, %v", st, err)
		}
		// The refusals and the admin actions are in the members' audit log.
		audit, err := os.ReadFile(filepath.Join(dir, "audit.log"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range [][]string{
			{`"msg":"denied"`, `"method":"RegisterNode"`, `"roles":["client"]`},
			{`"msg":"denied"`, `"method":"JoinMember"`, `"roles":["client"]`},
			{`"msg":"admin action"`, `"method":"CreateBucket"`, `"bucket":"clips"`, `"outcome":"OK"`},
			{`"msg":"admin action"`, `"method":"SetNodeAdminState"`, `"state":"ADMIN_STATE_DRAINING"`},
		} {
			found := false
			for _, line := range strings.Split(string(audit), "\n") {
				all := true
				for _, w := range want {
					all = all && strings.Contains(line, w)
				}
				found = found || all
			}
			if !found {
				t.Errorf("no audit record with %v", want)
			}
		}
	})
}

// getClipAs calls GetClip signed with a key, as a client certificate.
func getClipAs(ctx context.Context, t *testing.T, c *e2e.Cluster, id, secret, bucket, key string) *pb.GetClipResponse {
	t.Helper()
	conn, err := grpc.NewClient(c.Metas[0].GRPCAddr, grpc.WithTransportCredentials(c.TLS.Credentials(t, "client")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := &pb.GetClipRequest{Bucket: bucket, Key: key}
	const method = "/clipstore.meta.v1.MetaService/GetClip"
	d, err := callauth.Digest(req)
	if err != nil {
		t.Fatal(err)
	}
	resp := &pb.GetClipResponse{}
	if err := conn.Invoke(metadata.AppendToOutgoingContext(ctx, callauth.Header, callauth.Sign(id, secret, time.Now(), method, d)),
		method, req, resp); err != nil {
		t.Fatalf("GetClip %s/%s as %s: %v", bucket, key, id, err)
	}
	return resp
}

// firstShard is a record's first shard on a node, and the node's address.
func firstShard(resp *pb.GetClipResponse) ([]byte, string) {
	addrs := map[string]string{}
	for _, n := range resp.Nodes {
		addrs[n.NodeId] = n.Address
	}
	for _, s := range resp.Clip.Parts[0].Shards {
		if s.NodeId != "" {
			return s.ShardId, addrs[s.NodeId]
		}
	}
	return nil, ""
}

// forge flips the last byte of a token (its MAC).
func forge(token []byte) []byte {
	f := bytes.Clone(token)
	f[len(f)-1] ^= 1
	return f
}

// storageConn is a client certificate's connection to a storage node.
func storageConn(t *testing.T, c *e2e.Cluster, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(c.TLS.Credentials(t, "client")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readShardWith reads a shard's header with token and returns the code.
func readShardWith(ctx context.Context, t *testing.T, c *e2e.Cluster, addr string, shard, token []byte) codes.Code {
	t.Helper()
	if len(token) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, capability.Header, string(token))
	}
	stream, err := storagepb.NewStorageServiceClient(storageConn(t, c, addr)).ReadShard(ctx,
		&storagepb.ReadShardRequest{ShardId: shard, FirstBlock: 0, BlockCount: 1})
	if err == nil {
		_, err = stream.Recv()
	}
	return status.Code(err)
}

// writeShardWith opens a write of a fresh shard of resp's clip with resp's
// token and returns the code of the answer.
func writeShardWith(ctx context.Context, t *testing.T, c *e2e.Cluster, addr string, resp *pb.GetClipResponse) codes.Code {
	t.Helper()
	ctx = metadata.AppendToOutgoingContext(ctx, capability.Header, string(resp.Capability))
	stream, err := storagepb.NewStorageServiceClient(storageConn(t, c, addr)).WriteShard(ctx)
	if err != nil {
		return status.Code(err)
	}
	p := resp.Clip.Parts[0].Profile
	err = stream.Send(&storagepb.WriteShardRequest{Msg: &storagepb.WriteShardRequest_Header{Header: &storagepb.ShardHeader{
		ShardId: bytes.Repeat([]byte{7}, 16), ClipId: resp.Clip.ClipId, Index: 0, DataShards: p.DataShards,
		ParityShards: p.ParityShards, BlockSize: p.BlockSize, CommitDeadlineUnixNano: time.Now().Add(time.Minute).UnixNano()}}})
	if err == nil {
		_, err = stream.CloseAndRecv()
	}
	return status.Code(err)
}
