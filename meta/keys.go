package meta

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"regexp"

	"github.com/clipstore/clipstore/internal/sigv4"
	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// ClusterSecretHeader is the gRPC metadata key under which an S3 gateway
// presents the cluster secret to get signing keys.
const ClusterSecretHeader = "clipstore-cluster-secret"

// Access key ids look like AWS's: 20 characters of A-Z and 2-7, starting
// with "CS"; secrets are 40 characters of base64's URL alphabet.
const (
	accessKeyIDLen = 20
	secretLen      = 40
	maxKeyName     = 256
)

var (
	accessKeyIDRe = regexp.MustCompile(`^[A-Z0-9]{16,128}$`)
	dateRe        = regexp.MustCompile(`^[0-9]{8}$`)
	scopeRe       = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)
)

// newAccessKey makes a fresh key pair from crypto/rand.
func newAccessKey(name, by string, now int64) *pb.AccessKey {
	const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	pick := func(alphabet string, n int) string {
		b := make([]byte, n)
		rand.Read(b)
		for i := range b {
			b[i] = alphabet[int(b[i])%len(alphabet)] // both alphabets divide 256: no bias
		}
		return string(b)
	}
	return &pb.AccessKey{AccessKeyId: "CS" + pick(idAlphabet, accessKeyIDLen-2), SecretAccessKey: pick(secretAlphabet, secretLen),
		Name: name, CreatedUnixNano: now, CreatedBy: by}
}

// createAccessKey makes a key on the leader and commits it in one entry.
func (n *Node) createAccessKey(ctx context.Context, req *pb.CreateAccessKeyRequest) (*pb.CreateAccessKeyResponse, error) {
	if len(req.Name) > maxKeyName {
		return nil, fmt.Errorf("%w: a key name of %d bytes exceeds %d", ErrInvalidArgument, len(req.Name), maxKeyName)
	}
	by := ""
	if p, ok := peer.FromContext(ctx); ok {
		by = p.Addr.String()
	}
	cmd := &pb.CreateAccessKeyRequest{RequestId: req.RequestId, Name: req.Name,
		Key: newAccessKey(req.Name, by, n.cfg.now().UnixNano())}
	resp, err := n.propose(ctx, &pb.Command{RequestId: req.RequestId, Op: &pb.Command_CreateAccessKey{CreateAccessKey: cmd}})
	if err != nil {
		return nil, err
	}
	out := resp.(*pb.CreateAccessKeyResponse)
	n.log.Info("access key created", "access_key_id", out.Key.GetAccessKeyId(), "name", req.Name, "by", by)
	return out, nil
}

func (a *applier) createAccessKey(c *pb.CreateAccessKeyRequest) (*pb.CreateAccessKeyResponse, error) {
	k := c.Key
	if k == nil || !accessKeyIDRe.MatchString(k.AccessKeyId) || len(k.SecretAccessKey) < 16 || len(k.Name) > maxKeyName {
		return nil, fmt.Errorf("%w: a malformed access key", ErrInvalidArgument)
	}
	b := a.tx.Bucket(bktAccessKeys)
	if b.Get([]byte(k.AccessKeyId)) != nil {
		return nil, fmt.Errorf("%w: access key %s", ErrExists, k.AccessKeyId)
	}
	return &pb.CreateAccessKeyResponse{Key: k}, putMsg(b, []byte(k.AccessKeyId), k)
}

func (a *applier) deleteAccessKey(c *pb.DeleteAccessKeyRequest) (*pb.DeleteAccessKeyResponse, error) {
	b := a.tx.Bucket(bktAccessKeys)
	if b.Get([]byte(c.AccessKeyId)) == nil {
		return nil, fmt.Errorf("%w: access key %q", ErrNotFound, c.AccessKeyId)
	}
	return &pb.DeleteAccessKeyResponse{}, b.Delete([]byte(c.AccessKeyId))
}

func (n *Node) deleteAccessKey(ctx context.Context, req *pb.DeleteAccessKeyRequest) (*pb.DeleteAccessKeyResponse, error) {
	if req.AccessKeyId == n.cfg.RootAccessKey && n.cfg.RootAccessKey != "" {
		return nil, fmt.Errorf("%w: %s is the root key of the meta members' configuration: change it there", ErrFailedPrecondition, req.AccessKeyId)
	}
	resp, err := n.propose(ctx, &pb.Command{RequestId: req.RequestId, Op: &pb.Command_DeleteAccessKey{DeleteAccessKey: req}})
	if err != nil {
		return nil, err
	}
	n.log.Warn("access key deleted", "access_key_id", req.AccessKeyId)
	return resp.(*pb.DeleteAccessKeyResponse), nil
}

// listAccessKeys lists the keys without their secrets.
func (n *Node) listAccessKeys(_ context.Context, _ *pb.ListAccessKeysRequest) (*pb.ListAccessKeysResponse, error) {
	resp := &pb.ListAccessKeysResponse{}
	if n.cfg.RootAccessKey != "" {
		resp.Keys = append(resp.Keys, &pb.AccessKey{AccessKeyId: n.cfg.RootAccessKey, Name: "root (from the configuration)"})
	}
	err := n.fsm.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktAccessKeys).ForEach(func(k, v []byte) error {
			key := &pb.AccessKey{}
			if err := decodeMsg(k, v, key); err != nil {
				return err
			}
			key.SecretAccessKey = ""
			resp.Keys = append(resp.Keys, key)
			return nil
		})
	})
	return resp, err
}

// checkClusterSecret admits a caller that presents the cluster secret.
func (n *Node) checkClusterSecret(ctx context.Context) error {
	if len(n.cfg.ClusterSecret) == 0 {
		return fmt.Errorf("%w: this meta member has no cluster secret (--cluster-secret-file): it hands out no signing keys", ErrPermissionDenied)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	got := md.Get(ClusterSecretHeader)
	if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), n.cfg.ClusterSecret) != 1 {
		return fmt.Errorf("%w: signing keys are for S3 gateways holding the cluster secret", ErrPermissionDenied)
	}
	return nil
}

// signingKey derives a key's SigV4 signing key for one scope.
func (n *Node) signingKey(_ context.Context, req *pb.SigningKeyRequest) (*pb.SigningKeyResponse, error) {
	if !dateRe.MatchString(req.Date) || !scopeRe.MatchString(req.Region) || !scopeRe.MatchString(req.Service) {
		return nil, fmt.Errorf("%w: a signing key scope is a date YYYYMMDD, a region and a service (got %q, %q, %q)",
			ErrInvalidArgument, req.Date, req.Region, req.Service)
	}
	if n.cfg.RootAccessKey != "" && subtle.ConstantTimeCompare([]byte(req.AccessKeyId), []byte(n.cfg.RootAccessKey)) == 1 {
		return &pb.SigningKeyResponse{SigningKey: sigv4.DeriveKey(n.cfg.RootSecretKey, req.Date, req.Region, req.Service)}, nil
	}
	key := &pb.AccessKey{}
	var found bool
	err := n.fsm.view(func(tx *bolt.Tx) error {
		var err error
		found, err = getMsg(tx.Bucket(bktAccessKeys), []byte(req.AccessKeyId), key)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: access key %q", ErrNotFound, req.AccessKeyId)
	}
	return &pb.SigningKeyResponse{SigningKey: sigv4.DeriveKey(key.SecretAccessKey, req.Date, req.Region, req.Service)}, nil
}
