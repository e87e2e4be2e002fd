package meta

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/clipstore/clipstore/internal/callauth"
	"github.com/clipstore/clipstore/internal/tlsconf"
	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Who may do what. Every call passes authorize, which decides from two
// things:
//
//   - the role of the caller's certificate (with TLS): the cluster's own
//     calls (registration, heartbeats, joining, signing keys) are for
//     certificates of the roles tls.go names, whoever signs them;
//   - the principal, an access key: the call's signature (callauth), or
//     the key an S3 gateway or a forwarding meta member asserts. Its
//     grants (read, write, admin per bucket, and cluster admin) must allow
//     what callNeeds says the call needs.
//
// A call with no principal is anonymous: refused with Config.RequireAuth,
// allowed otherwise (a cluster on loopback or behind mTLS alone). A signed
// call is always checked, so that policies can be tried before they are
// required.

// need is what a call needs of its principal.
type need int

const (
	needPrincipal need = iota // any key
	needRead                  // read on the call's bucket
	needWrite                 // write on it
	needAdmin                 // admin on it
	needCluster               // cluster admin
)

func (nd need) String() string {
	return [...]string{"an access key", "read", "write", "admin", "cluster admin"}[nd]
}

// bucketCalls are the calls on one bucket (the request's bucket, or the
// name of the bucket it makes or deletes) and what they need of it.
var bucketCalls = map[string]need{
	"CreateBucket": needAdmin, "DeleteBucket": needAdmin, "PurgeClip": needAdmin,
	"BeginPut": needWrite, "CommitPut": needWrite, "DeleteClip": needWrite,
	"CreateUpload": needWrite, "BeginPart": needWrite, "CommitPart": needWrite, "CompleteUpload": needWrite, "AbortUpload": needWrite,
	"ListParts":     needWrite, // as S3's ListParts: the uploader's
	"ListUploads":   needWrite,
	"CreateDataset": needWrite, // a dataset keeps what its bucket's writers delete
	"GetClip":       needRead, "ListClips": needRead, "Find": needRead,
}

// keyCalls need any key: the cluster's views, a reader's shard report
// (meta checks the shard itself), ListBuckets (whose answer lists the
// buckets the key has a grant on), and the calls that name a dataset
// rather than a bucket (their handler checks the dataset's bucket:
// datasetAccess).
var keyCalls = map[string]bool{
	"ListBuckets": true, "ReportShard": true, "ListNodes": true, "ListMembers": true, "ClusterStatus": true,
	"ListDatasets": true, "GetDataset": true, "DeleteDataset": true, "ExtendDataset": true, "Plan": true,
}

// callNeeds says what a call needs, and on which bucket. A call without a
// rule is the cluster admin's.
func callNeeds(method string, req any) (need, string) {
	if nd, ok := bucketCalls[method]; ok {
		switch r := req.(type) {
		case interface{ GetBucket() string }:
			return nd, r.GetBucket()
		case interface{ GetName() string }: // CreateBucket, DeleteBucket
			return nd, r.GetName()
		}
		return needCluster, ""
	}
	if keyCalls[method] {
		return needPrincipal, ""
	}
	switch r := req.(type) {
	case *pb.RepairLimitsRequest: // reads need a key, changes a cluster admin
		if r.Concurrency == nil && r.BytesPerSec == nil {
			return needPrincipal, ""
		}
	case *pb.SettingsRequest: // reads need a key, a bucket's change its admin, the cluster's a cluster admin
		switch {
		case r.EtagMode == nil:
			return needPrincipal, ""
		case r.Bucket != "":
			return needAdmin, r.Bucket
		}
	}
	return needCluster, ""
}

// principal is an access key as authorization sees it.
type principal struct {
	id           string
	grants       []*pb.Grant
	clusterAdmin bool
}

// allows reports whether p's grants allow nd on bucket.
func (p *principal) allows(nd need, bucket string) bool {
	switch nd {
	case needPrincipal:
		return true
	case needCluster:
		return p.clusterAdmin
	}
	want := map[need]pb.Access{needRead: pb.Access_ACCESS_READ, needWrite: pb.Access_ACCESS_WRITE, needAdmin: pb.Access_ACCESS_ADMIN}[nd]
	for _, g := range p.grants {
		if (g.Bucket == "*" || g.Bucket == bucket) && (g.Access == want || g.Access == pb.Access_ACCESS_ADMIN) {
			return true
		}
	}
	return false
}

// seesBucket reports whether p has any grant on bucket: what ListBuckets
// shows it.
func (p *principal) seesBucket(bucket string) bool {
	for _, g := range p.grants {
		if g.Bucket == "*" || g.Bucket == bucket {
			return true
		}
	}
	return false
}

// anonymousByRole reports whether a certificate's role admits a call
// without a key: a gateway reads the ETag settings for itself, and
// cluster members (a dev cluster's process, a storage node) read the
// cluster's views.
func anonymousByRole(cert *x509.Certificate, method string, req any) bool {
	if cert == nil {
		return false
	}
	switch method {
	case "Settings":
		r, ok := req.(*pb.SettingsRequest)
		return ok && r.EtagMode == nil && tlsconf.HasRole(cert, tlsconf.RoleGateway)
	case "ListNodes", "ListMembers", "ClusterStatus":
		return tlsconf.HasRole(cert, tlsconf.RoleMeta, tlsconf.RoleStorage)
	}
	return false
}

// authorize is the member's gRPC interceptor for who may do what.
func (n *Node) authorize(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	var cert *x509.Certificate
	var roleErr error // a cluster call from a certificate without its role: fsck's need a cluster admin's key
	if n.cfg.TLS != nil {
		cert = tlsconf.PeerCertificate(ctx)
		// A call another member forwards with a user's key is the user's:
		// the member's role is for its own calls.
		if roleCalls(method) != nil && !forwardedWithKey(ctx) {
			if roleErr = checkRole(cert, method); roleErr == nil {
				return handler(ctx, req) // a cluster call from a certificate of its role
			}
			if !fsckCalls[method] {
				return nil, toStatus(roleErr)
			}
		}
	}
	p, err := n.authenticate(ctx, info.FullMethod, req, cert)
	if errors.Is(err, errUnknownKey) && !n.IsLeader() {
		// A key made a moment ago may not have reached this member: the
		// leader, which knows every committed key, judges the call.
		resp, ferr := n.forwardCall(ctx, info.FullMethod, req)
		if !errors.Is(ferr, ErrNotLeader) {
			return resp, ferr
		}
	}
	if err != nil {
		return nil, toStatus(err)
	}
	if p == nil && roleErr != nil {
		return nil, toStatus(roleErr)
	}
	if p == nil {
		if n.cfg.RequireAuth && !anonymousByRole(cert, method, req) {
			return nil, toStatus(fmt.Errorf("%w: %s: this cluster takes only calls signed with an access key "+
				"(CLIPSTORE_ACCESS_KEY and CLIPSTORE_SECRET_KEY)", ErrUnauthenticated, method))
		}
		return handler(ctx, req)
	}
	nd, bucket := callNeeds(method, req)
	if !p.allows(nd, bucket) {
		if bucket != "" {
			return nil, toStatus(fmt.Errorf("%w: %s: access key %s has no %s access to bucket %q", ErrPermissionDenied, method, p.id, nd, bucket))
		}
		return nil, toStatus(fmt.Errorf("%w: %s: access key %s is not a cluster admin", ErrPermissionDenied, method, p.id))
	}
	resp, err := handler(context.WithValue(ctx, principalKey{}, p), req)
	switch r := resp.(type) {
	case *pb.ListBucketsResponse:
		if err == nil {
			resp = visibleBuckets(r, p)
		}
	case *pb.ListDatasetsResponse:
		if err == nil {
			resp = visibleDatasets(r, p)
		}
	}
	return resp, err
}

type principalKey struct{}

// principalOf is the access key id a call was authorized as; "" for an
// anonymous call.
func principalOf(ctx context.Context) string {
	if p, ok := ctx.Value(principalKey{}).(*principal); ok {
		return p.id
	}
	return ""
}

// datasetAccess checks, for calls that name a dataset rather than a
// bucket, that the call's principal has nd on the dataset's bucket (an
// anonymous call got here only where anonymous calls are allowed).
func datasetAccess(ctx context.Context, method string, nd need, bucket string) error {
	p, ok := ctx.Value(principalKey{}).(*principal)
	if !ok || p.allows(nd, bucket) {
		return nil
	}
	return fmt.Errorf("%w: %s: access key %s has no %s access to bucket %q", ErrPermissionDenied, method, p.id, nd, bucket)
}

// visibleDatasets is r without the datasets of buckets p has no grant on.
func visibleDatasets(r *pb.ListDatasetsResponse, p *principal) *pb.ListDatasetsResponse {
	out := &pb.ListDatasetsResponse{}
	for _, d := range r.Datasets {
		if p.seesBucket(d.GetBucket()) {
			out.Datasets = append(out.Datasets, d)
		}
	}
	return out
}

// forwardedWithKey reports whether the call was forwarded by a member
// with a caller's signature or asserted principal.
func forwardedWithKey(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(forwardedKey)) > 0 && (len(md.Get(callauth.Header)) > 0 || len(md.Get(callauth.PrincipalHeader)) > 0)
}

// visibleBuckets is r without the buckets p has no grant on.
func visibleBuckets(r *pb.ListBucketsResponse, p *principal) *pb.ListBucketsResponse {
	out := proto.Clone(r).(*pb.ListBucketsResponse)
	out.Buckets = out.Buckets[:0]
	for _, b := range r.Buckets {
		if p.seesBucket(b.GetName()) {
			out.Buckets = append(out.Buckets, b)
		}
	}
	return out
}

// authenticate finds the call's principal: the key a gateway or a meta
// member asserts, or the key that signed the call; nil for neither.
func (n *Node) authenticate(ctx context.Context, fullMethod string, req any, cert *x509.Certificate) (*principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	// Without TLS no assertion is taken (nor needed: RequireAuth needs TLS,
	// and anonymous calls may do anything).
	if as := md.Get(callauth.PrincipalHeader); len(as) > 0 && n.cfg.TLS != nil {
		if cert == nil || !tlsconf.HasRole(cert, tlsconf.RoleGateway, tlsconf.RoleMeta) {
			return nil, fmt.Errorf("%w: only S3 gateways and meta members, by their certificates, act on behalf of an access key", ErrPermissionDenied)
		}
		if len(as) != 1 {
			return nil, fmt.Errorf("%w: %d principals asserted; one at most", ErrUnauthenticated, len(as))
		}
		p, _, err := n.principals.get(ctx, n, as[0])
		return p, err
	}
	hs := md.Get(callauth.Header)
	if len(hs) == 0 {
		return nil, nil
	}
	if len(hs) != 1 {
		return nil, fmt.Errorf("%w: %d signatures; one at most", ErrUnauthenticated, len(hs))
	}
	c, err := callauth.Parse(hs[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	p, secret, err := n.principals.get(ctx, n, c.AccessKeyID)
	if err != nil {
		return nil, err
	}
	msg, ok := req.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%w: %T is not a message", ErrInvalidArgument, req)
	}
	digest, err := callauth.Digest(msg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	if err := c.Verify(callauth.SigningKey(secret, c.Date), fullMethod, digest, n.cfg.now(), callauth.DefaultSkew); err != nil {
		return nil, fmt.Errorf("%w: access key %s: %v", ErrUnauthenticated, c.AccessKeyID, err)
	}
	return p, nil
}

// principalTTL is how long authentication trusts what it looked up of a
// key: a deleted key stops working within it.
const principalTTL = 2 * time.Second

// errUnknownKey is a key this member does not know.
var errUnknownKey = fmt.Errorf("%w: unknown access key", ErrUnauthenticated)

// principalCache keeps the keys authentication looked up, their secrets
// opened, for principalTTL.
type principalCache struct {
	mu   sync.Mutex
	keys map[string]cachedPrincipal
}

type cachedPrincipal struct {
	p      *principal
	secret string
	at     time.Time
}

// get returns the principal of access key id and its secret; an unknown
// key is errUnknownKey.
func (c *principalCache) get(ctx context.Context, n *Node, id string) (*principal, string, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.keys[id]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < principalTTL {
		return e.p, e.secret, nil
	}
	p, secret, err := n.lookupPrincipal(id)
	if errors.Is(err, ErrNotFound) {
		return nil, "", fmt.Errorf("%w %q", errUnknownKey, id)
	}
	if err != nil {
		return nil, "", err
	}
	c.mu.Lock()
	if c.keys == nil || len(c.keys) > 100_000 {
		c.keys = map[string]cachedPrincipal{}
	}
	c.keys[id] = cachedPrincipal{p: p, secret: secret, at: now}
	c.mu.Unlock()
	return p, secret, nil
}

// lookupPrincipal reads access key id from the state (or the
// configuration's root key), its secret opened.
func (n *Node) lookupPrincipal(id string) (*principal, string, error) {
	if n.cfg.RootAccessKey != "" && id == n.cfg.RootAccessKey {
		return &principal{id: id, grants: rootGrants, clusterAdmin: true}, n.cfg.RootSecretKey, nil
	}
	key := &pb.AccessKey{}
	var found bool
	err := n.fsm.viewApplied(func(tx *bolt.Tx) error {
		var err error
		found, err = getMsg(tx.Bucket(bktAccessKeys), []byte(id), key)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if !found {
		return nil, "", ErrNotFound
	}
	secret, err := n.openSecret(key)
	if err != nil {
		return nil, "", err
	}
	return &principal{id: id, grants: key.Grants, clusterAdmin: key.ClusterAdmin}, secret, nil
}

// forwardCall makes the call on the leader, with the caller's signature
// or assertion; ErrNotLeader when there is no leader to ask, or this call
// was forwarded here already.
func (n *Node) forwardCall(ctx context.Context, fullMethod string, req any) (any, error) {
	name := fullMethod[strings.LastIndex(fullMethod, "/")+1:]
	md := pb.File_meta_proto.Services().ByName("MetaService").Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, ErrNotLeader
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, ErrNotLeader
	}
	cc, fctx, err := n.leaderConn(ctx)
	if err != nil {
		return nil, err
	}
	resp := mt.New().Interface()
	if err := cc.Invoke(fctx, fullMethod, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}
