package meta

import (
	"context"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/clipstore/clipstore/internal/callauth"
	"github.com/clipstore/clipstore/internal/tlsconf"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The audit log has one record per admin action a member serves (what
// changes buckets, nodes, members, keys, limits or settings) and per call
// it refuses (PermissionDenied, Unauthenticated), whatever the call: who
// asked (address, certificate subject and roles), what, with what
// arguments (never a secret), and the outcome.

// auditedCalls are the admin actions; reads are audited only when refused.
var auditedCalls = map[string]bool{
	"CreateBucket": true, "DeleteBucket": true, "SetNodeAdminState": true, "RemoveNode": true,
	"Rebalance": true, "JoinMember": true, "RemoveMember": true, "CreateAccessKey": true,
	"DeleteAccessKey": true,
}

// audit is the first interceptor of a member's gRPC server.
func (n *Node) audit(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	start := time.Now()
	resp, err := handler(ctx, req)
	code := status.Code(err)
	denied := code == codes.PermissionDenied || code == codes.Unauthenticated
	if !denied && !auditedCall(method, req) {
		return resp, err
	}
	attrs := append([]any{"method", method}, callerAttrs(ctx)...)
	attrs = append(attrs, auditArgs(req)...)
	attrs = append(attrs, "duration", time.Since(start))
	if err != nil {
		attrs = append(attrs, "outcome", code.String(), "error", status.Convert(err).Message())
	} else {
		attrs = append(attrs, "outcome", "OK")
	}
	msg := "admin action"
	if denied {
		msg = "denied"
	}
	n.auditLog.Info(msg, attrs...)
	return resp, err
}

// auditedCall reports whether a call is an admin action: those that
// change the cluster's configuration (RepairLimits and Settings only when
// they set something).
func auditedCall(method string, req any) bool {
	switch r := req.(type) {
	case *pb.RepairLimitsRequest:
		return r.Concurrency != nil || r.BytesPerSec != nil
	case *pb.SettingsRequest:
		return r.EtagMode != nil
	}
	return auditedCalls[method]
}

// callerAttrs say who made a call: its address and, over TLS, the subject
// and roles of its certificate.
func callerAttrs(ctx context.Context) []any {
	var attrs []any
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, "caller", p.Addr.String())
	}
	if cert := tlsconf.PeerCertificate(ctx); cert != nil {
		attrs = append(attrs, "subject", cert.Subject.CommonName, "roles", tlsconf.Roles(cert))
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if as := md.Get(callauth.PrincipalHeader); len(as) > 0 {
		attrs = append(attrs, "on_behalf_of", as[0])
	} else if hs := md.Get(callauth.Header); len(hs) > 0 {
		if c, err := callauth.Parse(hs[0]); err == nil {
			attrs = append(attrs, "access_key", c.AccessKeyID)
		} else {
			attrs = append(attrs, "access_key", "(malformed signature)")
		}
	}
	return attrs
}

// auditArgs are what an audit record says of a request's arguments: the
// names of what it acts on, never a secret.
func auditArgs(req any) []any {
	switch r := req.(type) {
	case *pb.CreateBucketRequest:
		return []any{"bucket", r.Name}
	case *pb.DeleteBucketRequest:
		return []any{"bucket", r.Name}
	case *pb.SetNodeAdminStateRequest:
		return []any{"node", r.NodeId, "state", r.State.String(), "force", r.Force, "dead", r.Dead}
	case *pb.RemoveNodeRequest:
		return []any{"node", r.NodeId}
	case *pb.JoinMemberRequest:
		return []any{"joining", r.Id, "raft", r.RaftAddress}
	case *pb.RemoveMemberRequest:
		return []any{"removing", r.Id}
	case *pb.RepairLimitsRequest:
		return []any{"moves", r.Moves, "concurrency", r.GetConcurrency(), "bytes_per_sec", r.GetBytesPerSec()}
	case *pb.SettingsRequest:
		return []any{"bucket", r.Bucket, "etag_mode", r.GetEtagMode()}
	case *pb.CreateAccessKeyRequest:
		return []any{"name", r.Name, "grants", grantsString(r.Grants), "cluster_admin", r.ClusterAdmin}
	case *pb.DeleteAccessKeyRequest:
		return []any{"access_key_id", r.AccessKeyId}
	case *pb.SigningKeyRequest:
		return []any{"access_key_id", r.AccessKeyId}
	case interface{ GetBucket() string }:
		args := []any{"bucket", r.GetBucket()}
		if k, ok := req.(interface{ GetKey() string }); ok && k.GetKey() != "" {
			args = append(args, "key", k.GetKey())
		}
		return args
	case interface{ GetNodeId() string }:
		return []any{"node", r.GetNodeId()}
	case interface{ GetClipId() []byte }:
		return []any{"clip", hex.EncodeToString(r.GetClipId())}
	}
	return nil
}

// newAuditLog is Config.Audit, or the member's log with audit=true.
func newAuditLog(cfg Config, log *slog.Logger) *slog.Logger {
	if cfg.Audit != nil {
		return cfg.Audit.With("member", cfg.ID)
	}
	return log.With("audit", true)
}
