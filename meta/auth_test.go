package meta_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
	"github.com/clipstore/clipstore/internal/callauth"
	"github.com/clipstore/clipstore/internal/tlsconf"
	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// testPKI makes a CA and, per role, a certificate and a TLS loader.
type testPKI struct {
	t   *testing.T
	dir string
	ca  struct{ cert, key []byte }
}

func newTestPKI(t *testing.T) *testPKI {
	p := &testPKI{t: t, dir: t.TempDir()}
	var err error
	if p.ca.cert, p.ca.key, err = tlsconf.NewCA("auth test CA", 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "ca.crt"), p.ca.cert, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// loader returns the identity of a certificate with roles.
func (p *testPKI) loader(name string, roles ...string) *tlsconf.Loader {
	p.t.Helper()
	cert, key, err := tlsconf.NewLeaf(p.ca.cert, p.ca.key, tlsconf.LeafOptions{CommonName: name, Roles: roles, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		p.t.Fatal(err)
	}
	f := tlsconf.Files{Cert: filepath.Join(p.dir, name+".crt"), Key: filepath.Join(p.dir, name+".key"), CA: filepath.Join(p.dir, "ca.crt")}
	if err := os.WriteFile(f.Cert, cert, 0o600); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(f.Key, key, 0o600); err != nil {
		p.t.Fatal(err)
	}
	l, err := tlsconf.New(f, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return l
}

const (
	rootID     = "ROOTKEYFORAUTHTEST"
	rootSecret = "root-secret-of-the-auth-test"
	service    = "/clipstore.meta.v1.MetaService/"
)

// signer signs calls as one key (nil: unsigned), possibly wrongly.
type signer struct {
	id, secret string
	at         func() time.Time // default time.Now
	misdirect  bool             // sign for another method than the one called
	asserted   string           // assert this principal instead of signing
}

func (s *signer) context(t *testing.T, ctx context.Context, method string, req proto.Message) context.Context {
	if s == nil {
		return ctx
	}
	if s.asserted != "" {
		return metadata.AppendToOutgoingContext(ctx, callauth.PrincipalHeader, s.asserted)
	}
	d, err := callauth.Digest(req)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if s.at != nil {
		at = s.at()
	}
	if s.misdirect {
		method += "Elsewhere"
	}
	return metadata.AppendToOutgoingContext(ctx, callauth.Header, callauth.Sign(s.id, s.secret, at, method, d))
}

// TestAuthMatrix: on a 3-member cluster with TLS and RequireAuth, every
// MetaService method × every kind of caller (no key, keys of each grant,
// forged, expired and misdirected signatures, an unknown key, principals
// asserted by a gateway's and by a client's certificate) is admitted or
// refused as the design's table, written out here apart from the code's,
// says; calls to followers (forwarded to the leader) are judged alike,
// a key made a moment ago works at once on every member, and ListBuckets
// shows a key only the buckets it has a grant on.
func TestAuthMatrix(t *testing.T) {
	pki := newTestPKI(t)
	metaID := pki.loader("meta", tlsconf.RoleMeta)
	clientID, gatewayID := pki.loader("client", tlsconf.RoleClient), pki.loader("gateway", tlsconf.RoleGateway)
	storageID := pki.loader("storage", tlsconf.RoleStorage)
	root := &signer{id: rootID, secret: rootSecret}
	c := metatest.New(t, 3, metatest.Options{
		Configure: func(cfg *meta.Config) {
			cfg.TLS, cfg.RequireAuth = metaID, true
			cfg.SecretsKey = []byte("a-secrets-key-for-the-auth-matrix-32-bytes")
			cfg.RootAccessKey, cfg.RootSecretKey = rootID, rootSecret
		},
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(clientID.ClientCredentials()),
			grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				return invoker(root.context(t, ctx, method, req.(proto.Message)), method, req, reply, cc, opts...)
			})},
	})
	leader := c.WaitLeader()
	ctx := t.Context()
	// Keys, made through the leader and used at once everywhere.
	mk := func(name string, admin bool, grants ...*pb.Grant) *signer {
		t.Helper()
		resp, err := leader.Client.CreateAccessKey(ctx, &pb.CreateAccessKeyRequest{Name: name, Grants: grants, ClusterAdmin: admin})
		if err != nil {
			t.Fatal(err)
		}
		return &signer{id: resp.Key.AccessKeyId, secret: resp.Key.SecretAccessKey}
	}
	reader := mk("reader", false, &pb.Grant{Bucket: "one", Access: pb.Access_ACCESS_READ})
	writer := mk("writer", false, &pb.Grant{Bucket: "one", Access: pb.Access_ACCESS_WRITE})
	owner := mk("owner", false, &pb.Grant{Bucket: "one", Access: pb.Access_ACCESS_ADMIN})
	everything := mk("every bucket", false, &pb.Grant{Bucket: "*", Access: pb.Access_ACCESS_ADMIN})
	operator := mk("operator", true)

	dial := func(id *tlsconf.Loader, m *metatest.Member) *grpc.ClientConn {
		conn, err := grpc.NewClient(m.GRPCAddr, grpc.WithTransportCredentials(id.ClientCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	var followers []*metatest.Member
	for _, m := range c.Members {
		if m != leader {
			followers = append(followers, m)
		}
	}
	members := []*metatest.Member{leader, followers[0], followers[1]}
	clientConns := make([]*grpc.ClientConn, len(members))
	gatewayConns := make([]*grpc.ClientConn, len(members))
	storageConns := make([]*grpc.ClientConn, len(members))
	for i, m := range members {
		clientConns[i], gatewayConns[i], storageConns[i] = dial(clientID, m), dial(gatewayID, m), dial(storageID, m)
	}

	// What each method needs, as the design says.
	needs := map[string]string{
		"CreateBucket": "admin", "DeleteBucket": "admin", "ListBuckets": "key",
		"BeginPut": "write", "CommitPut": "write", "CreateUpload": "write", "BeginPart": "write", "CommitPart": "write",
		"CompleteUpload": "write", "AbortUpload": "write", "ListParts": "write", "ListUploads": "write", "DeleteClip": "write",
		"GetClip": "read", "ListClips": "read", "Find": "read",
		"ReportShard": "key", "ListNodes": "key", "ListMembers": "key", "ClusterStatus": "key", "RepairLimits": "key", "Settings": "key",
		"SetNodeAdminState": "cluster", "RemoveNode": "cluster", "Rebalance": "cluster", "RemoveMember": "cluster",
		"CreateAccessKey": "cluster", "ListAccessKeys": "cluster", "DeleteAccessKey": "cluster",
		"ListNodeShards": "cluster", "CheckShards": "cluster", "InventoryCapability": "cluster", // fsck
		"CreateDataset": "write", "PurgeClip": "admin",
		"ListDatasets": "key", "GetDataset": "key", "DeleteDataset": "key", "Plan": "key", "ExtendDataset": "key", // then the dataset's bucket
		"RegisterNode": "role", "Heartbeat": "role", "UpdateShard": "role", "JoinMember": "role", "SigningKey": "role",
	}
	type caller struct {
		name    string
		s       *signer
		gateway bool   // call with the gateway's certificate
		grants  string // what its key may do: "BUCKET:ACCESS…", and "cluster"; "-" for no key at all
		refusal codes.Code
		storage bool // call with a storage node's certificate
	}
	tenMinutesAgo := func() time.Time { return time.Now().Add(-10 * time.Minute) }
	callers := []caller{
		{"no key", nil, false, "-", codes.Unauthenticated, false},
		{"reader", reader, false, "one:read", codes.PermissionDenied, false},
		{"writer", writer, false, "one:write", codes.PermissionDenied, false},
		{"bucket owner", owner, false, "one:admin", codes.PermissionDenied, false},
		{"every bucket", everything, false, "*:admin", codes.PermissionDenied, false},
		{"cluster admin", operator, false, "cluster", codes.PermissionDenied, false},
		{"root", root, false, "*:admin cluster", codes.PermissionDenied, false},
		{"forged", &signer{id: owner.id, secret: owner.secret + "x"}, false, "-", codes.Unauthenticated, false},
		{"expired", &signer{id: root.id, secret: root.secret, at: tenMinutesAgo}, false, "-", codes.Unauthenticated, false},
		{"signed for another call", &signer{id: root.id, secret: root.secret, misdirect: true}, false, "-", codes.Unauthenticated, false},
		{"unknown key", &signer{id: "CSNOSUCHKEYAAAAAAAAA", secret: "whatever-secret"}, false, "-", codes.Unauthenticated, false},
		{"gateway for the reader", &signer{asserted: reader.id}, true, "one:read", codes.PermissionDenied, false},
		{"gateway for nobody", nil, true, "-", codes.Unauthenticated, false},
		{name: "storage node for itself", storage: true, grants: "-", refusal: codes.Unauthenticated},
		{"client asserting root", &signer{asserted: rootID}, false, "-", codes.PermissionDenied, false},
	}
	allowed := func(cl caller, method, need, bucket string) bool {
		switch {
		case cl.storage: // a member's own calls, and the cluster's views
			switch method {
			case "RegisterNode", "Heartbeat", "UpdateShard", "ListNodeShards", "CheckShards", "ListNodes", "ListMembers", "ClusterStatus":
				return true
			}
			return false
		case need == "role": // a cluster member's call: of these callers, only the gateway gets signing keys
			return cl.gateway && method == "SigningKey"
		case cl.gateway && cl.grants == "-": // a gateway on its own behalf reads the ETag settings
			return method == "Settings"
		case cl.grants == "-":
			return false
		}
		if need == "key" {
			return true
		}
		for _, g := range strings.Fields(cl.grants) {
			if g == "cluster" {
				if need == "cluster" {
					return true
				}
				continue
			}
			b, access, _ := strings.Cut(g, ":")
			if need != "cluster" && (b == "*" || b == bucket) && (access == need || access == "admin") {
				return true
			}
		}
		return false
	}

	methods := pb.File_meta_proto.Services().ByName("MetaService").Methods()
	calls := 0
	for i := range methods.Len() {
		md := methods.Get(i)
		name := string(md.Name())
		need, ok := needs[name]
		if !ok {
			t.Errorf("%s has no rule in this test's table: say what it needs", name)
			continue
		}
		mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
		if err != nil {
			t.Fatal(err)
		}
		for _, bucket := range []string{"one", "two"} {
			req := mt.New().Interface()
			field := "bucket"
			if name == "CreateBucket" || name == "DeleteBucket" {
				field = "name"
			}
			scoped := false
			if f := req.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(field)); f != nil && f.Kind() == protoreflect.StringKind {
				req.ProtoReflect().Set(f, protoreflect.ValueOfString(bucket))
				scoped = true
			}
			if !scoped && bucket == "two" {
				continue
			}
			if name == "DeleteBucket" && bucket == "one" {
				continue // keep bucket one (its deletion is judged on two)
			}
			if !scoped {
				bucket = ""
			}
			for j, cl := range callers {
				if name == "Settings" || name == "RepairLimits" {
					need = "key" // reads; their writes are judged below
				}
				at := j % len(members)
				conn := clientConns[at]
				if cl.gateway {
					conn = gatewayConns[at]
				}
				if cl.storage {
					conn = storageConns[at]
				}
				callCtx, cancel := context.WithTimeout(cl.s.context(t, ctx, service+name, req), 10*time.Second)
				err := conn.Invoke(callCtx, service+name, req, mt.New().Interface())
				cancel()
				calls++
				code := status.Code(err)
				refused := code == codes.PermissionDenied || code == codes.Unauthenticated
				want := allowed(cl, name, need, bucket)
				wantCode := cl.refusal
				if (name == "ListNodeShards" || name == "CheckShards") && cl.s == nil {
					wantCode = codes.PermissionDenied // fsck's calls without a key: the certificate lacks the role
				}
				switch {
				case want && refused:
					t.Errorf("%s on %q by %s (at member %d): refused (%v), want admitted", name, bucket, cl.name, at, err)
				case !want && !refused:
					t.Errorf("%s on %q by %s (at member %d): admitted (%v), want refused", name, bucket, cl.name, at, err)
				case !want && need != "role" && code != wantCode:
					t.Errorf("%s on %q by %s: %v, want %v", name, bucket, cl.name, err, wantCode)
				}
				if refused && (strings.Contains(status.Convert(err).Message(), owner.secret) || strings.Contains(status.Convert(err).Message(), rootSecret)) {
					t.Errorf("a refusal quotes a secret: %v", err)
				}
			}
		}
	}
	t.Logf("%d calls judged", calls)

	// Writes of settings and limits: the cluster's need a cluster admin,
	// a bucket's its admin.
	setCases := []struct {
		name string
		req  proto.Message
		s    *signer
		ok   bool
	}{
		{"Settings", &pb.SettingsRequest{EtagMode: proto.String("fast")}, owner, false},
		{"Settings", &pb.SettingsRequest{EtagMode: proto.String("fast")}, operator, true},
		{"Settings", &pb.SettingsRequest{Bucket: "one", EtagMode: proto.String("fast")}, writer, false},
		{"Settings", &pb.SettingsRequest{Bucket: "one", EtagMode: proto.String("fast")}, owner, true},
		{"RepairLimits", &pb.RepairLimitsRequest{Concurrency: proto.Uint32(2)}, everything, false},
		{"RepairLimits", &pb.RepairLimitsRequest{Concurrency: proto.Uint32(2)}, operator, true},
	}
	for _, sc := range setCases {
		resp := proto.Clone(sc.req)
		err := clientConns[1].Invoke(sc.s.context(t, ctx, service+sc.name, sc.req), service+sc.name, sc.req, resp)
		code := status.Code(err)
		if refused := code == codes.PermissionDenied; refused == sc.ok {
			t.Errorf("%s %v by %s: %v, want allowed %v", sc.name, sc.req, sc.s.id, err, sc.ok)
		}
	}

	// ListBuckets shows a key the buckets it has a grant on.
	for _, b := range []string{"one", "two", "three"} {
		if _, err := leader.Client.CreateBucket(ctx, &pb.CreateBucketRequest{Name: b}); err != nil && status.Code(err) != codes.AlreadyExists {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		s    *signer
		want string
	}{{reader, "one"}, {everything, "one three two"}, {operator, ""}} {
		resp := &pb.ListBucketsResponse{}
		req := &pb.ListBucketsRequest{}
		if err := clientConns[2].Invoke(tc.s.context(t, ctx, service+"ListBuckets", req), service+"ListBuckets", req, resp); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, b := range resp.Buckets {
			got = append(got, b.Name)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("ListBuckets by %s: %v, want %q", tc.s.id, got, tc.want)
		}
	}

	// A dataset's calls are judged on the dataset's bucket.
	if _, err := leader.Client.CreateDataset(ctx, &pb.CreateDatasetRequest{Name: "ds-one", Bucket: "one"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  proto.Message
		resp proto.Message
		s    *signer
		ok   bool
	}{
		{"GetDataset", &pb.GetDatasetRequest{Name: "ds-one"}, &pb.GetDatasetResponse{}, reader, true},
		{"GetDataset", &pb.GetDatasetRequest{Name: "ds-one"}, &pb.GetDatasetResponse{}, operator, false},
		{"DeleteDataset", &pb.DeleteDatasetRequest{Name: "ds-one"}, &pb.DeleteDatasetResponse{}, reader, false},
		{"CreateDataset", &pb.CreateDatasetRequest{Name: "ds-two", Bucket: "one"}, &pb.CreateDatasetResponse{}, reader, false},
		{"PurgeClip", &pb.PurgeClipRequest{Bucket: "one", Key: "k"}, &pb.PurgeClipResponse{}, writer, false},
		{"DeleteDataset", &pb.DeleteDatasetRequest{Name: "ds-one"}, &pb.DeleteDatasetResponse{}, writer, true},
	} {
		err := clientConns[1].Invoke(tc.s.context(t, ctx, service+tc.name, tc.req), service+tc.name, tc.req, tc.resp)
		if refused := status.Code(err) == codes.PermissionDenied; refused == tc.ok || (tc.ok && err != nil) {
			t.Errorf("%s by %s: %v, want allowed %v", tc.name, tc.s.id, err, tc.ok)
		}
	}

	// A deleted key stops working on every member within a few seconds.
	if _, err := leader.Client.DeleteAccessKey(ctx, &pb.DeleteAccessKeyRequest{AccessKeyId: reader.id}); err != nil {
		t.Fatal(err)
	}
	for i := range members {
		await.True(t, 10*time.Second, "the deleted key refused at member "+members[i].ID, func() bool {
			req := &pb.GetClipRequest{Bucket: "one", Key: "k"}
			err := clientConns[i].Invoke(reader.context(t, ctx, service+"GetClip", req), service+"GetClip", req, &pb.GetClipResponse{})
			return status.Code(err) == codes.Unauthenticated
		})
	}
}
