package meta

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"regexp"

	"github.com/clipstore/clipstore/internal/sigv4"
	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
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

// maxGrants bounds the grants of one key.
const maxGrants = 1000

// ValidateGrants checks a key's grants: each names a bucket (or "*", every
// bucket) and an access.
func ValidateGrants(grants []*pb.Grant) error {
	if len(grants) > maxGrants {
		return fmt.Errorf("%w: %d grants; at most %d", ErrInvalidArgument, len(grants), maxGrants)
	}
	for _, g := range grants {
		if g.Bucket != "*" {
			if err := ValidateBucketName(g.Bucket); err != nil {
				return fmt.Errorf("grant on %q: %w", g.Bucket, err)
			}
		}
		switch g.Access {
		case pb.Access_ACCESS_READ, pb.Access_ACCESS_WRITE, pb.Access_ACCESS_ADMIN:
		default:
			return fmt.Errorf("%w: grant on %q: access %v is not read, write or admin", ErrInvalidArgument, g.Bucket, g.Access)
		}
	}
	return nil
}

// rootGrants are the root key's: everything.
var rootGrants = []*pb.Grant{{Bucket: "*", Access: pb.Access_ACCESS_ADMIN}}

// errNoSecretsKey refuses to store a secret that could not be sealed.
var errNoSecretsKey = fmt.Errorf("%w: this meta member has no secrets key (--secrets-key-file, the same on every member): "+
	"access keys' secrets are only stored sealed", ErrFailedPrecondition)

// secretsAEAD is the AEAD that seals secrets: AES-256-GCM under the
// SHA-256 of the secrets key file's content; nil without one.
func secretsAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) == 0 {
		return nil, nil
	}
	sum := sha256.Sum256(append([]byte("clipstore secrets key v1\x00"), key...))
	block, err := aes.NewCipher(sum[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealSecret seals a key's secret, bound to its access key id:
// nonce || ciphertext.
func sealSecret(aead cipher.AEAD, id, secret string) []byte {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(secret)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, []byte(secret), []byte(id))
}

// openSecret returns a stored key's secret: its sealed secret opened, or,
// for a key stored before secrets were sealed, the one it kept.
func (n *Node) openSecret(k *pb.AccessKey) (string, error) {
	if len(k.SealedSecret) == 0 {
		return k.SecretAccessKey, nil
	}
	if n.secrets == nil {
		return "", fmt.Errorf("access key %s: %w", k.AccessKeyId, errNoSecretsKey)
	}
	ns := n.secrets.NonceSize()
	if len(k.SealedSecret) < ns {
		return "", fmt.Errorf("access key %s: its sealed secret is truncated", k.AccessKeyId)
	}
	secret, err := n.secrets.Open(nil, k.SealedSecret[:ns], k.SealedSecret[ns:], []byte(k.AccessKeyId))
	if err != nil {
		return "", fmt.Errorf("%w: access key %s: its secret does not open with this member's secrets key "+
			"(is --secrets-key-file the same on every meta member?)", ErrFailedPrecondition, k.AccessKeyId)
	}
	return string(secret), nil
}

// createAccessKey makes a key on the leader and commits it in one entry,
// its secret sealed; the answer carries the secret in the clear, once.
func (n *Node) createAccessKey(ctx context.Context, req *pb.CreateAccessKeyRequest) (*pb.CreateAccessKeyResponse, error) {
	if len(req.Name) > maxKeyName {
		return nil, fmt.Errorf("%w: a key name of %d bytes exceeds %d", ErrInvalidArgument, len(req.Name), maxKeyName)
	}
	if err := ValidateGrants(req.Grants); err != nil {
		return nil, err
	}
	if n.secrets == nil {
		return nil, errNoSecretsKey
	}
	by := ""
	if p, ok := peer.FromContext(ctx); ok {
		by = p.Addr.String()
	}
	key := newAccessKey(req.Name, by, n.cfg.now().UnixNano())
	secret := key.SecretAccessKey
	key.SealedSecret, key.SecretAccessKey, key.Grants = sealSecret(n.secrets, key.AccessKeyId, secret), "", req.Grants
	key.ClusterAdmin = req.ClusterAdmin
	cmd := &pb.CreateAccessKeyRequest{RequestId: req.RequestId, Name: req.Name, Key: key}
	resp, err := n.propose(ctx, &pb.Command{RequestId: req.RequestId, Op: &pb.Command_CreateAccessKey{CreateAccessKey: cmd}})
	if err != nil {
		return nil, err
	}
	out := resp.(*pb.CreateAccessKeyResponse)
	if out.Key == nil {
		// The request id was seen before: that key's secret was shown then
		// and cannot be shown again.
		return nil, fmt.Errorf("%w: this request created a key before; its secret was shown then", ErrExists)
	}
	out.Key = proto.Clone(out.Key).(*pb.AccessKey)
	out.Key.SealedSecret, out.Key.SecretAccessKey = nil, secret
	n.log.Info("access key created", "access_key_id", out.Key.GetAccessKeyId(), "name", req.Name, "grants", grantsString(req.Grants),
		"cluster_admin", req.ClusterAdmin, "by", by)
	return out, nil
}

func (a *applier) createAccessKey(c *pb.CreateAccessKeyRequest) (*pb.CreateAccessKeyResponse, error) {
	k := c.Key
	if k == nil || !accessKeyIDRe.MatchString(k.AccessKeyId) || len(k.Name) > maxKeyName ||
		(len(k.SealedSecret) == 0 && len(k.SecretAccessKey) < 16) {
		return nil, fmt.Errorf("%w: a malformed access key", ErrInvalidArgument)
	}
	if err := ValidateGrants(k.Grants); err != nil {
		return nil, err
	}
	b := a.tx.Bucket(bktAccessKeys)
	if b.Get([]byte(k.AccessKeyId)) != nil {
		return nil, fmt.Errorf("%w: access key %s", ErrExists, k.AccessKeyId)
	}
	return &pb.CreateAccessKeyResponse{Key: k}, putMsg(b, []byte(k.AccessKeyId), k)
}

// grantsString renders grants as the CLI takes them: "bucket:access,…".
func grantsString(grants []*pb.Grant) string {
	s := ""
	for i, g := range grants {
		if i > 0 {
			s += ","
		}
		s += g.Bucket + ":" + accessName(g.Access)
	}
	return s
}

func accessName(a pb.Access) string {
	switch a {
	case pb.Access_ACCESS_READ:
		return "read"
	case pb.Access_ACCESS_WRITE:
		return "write"
	case pb.Access_ACCESS_ADMIN:
		return "admin"
	}
	return a.String()
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
		resp.Keys = append(resp.Keys, &pb.AccessKey{AccessKeyId: n.cfg.RootAccessKey, Name: "root (from the configuration)", Grants: rootGrants,
			ClusterAdmin: true})
	}
	err := n.fsm.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktAccessKeys).ForEach(func(k, v []byte) error {
			key := &pb.AccessKey{}
			if err := decodeMsg(k, v, key); err != nil {
				return err
			}
			key.SecretAccessKey, key.SealedSecret = "", nil
			resp.Keys = append(resp.Keys, key)
			return nil
		})
	})
	return resp, err
}

// checkClusterSecret admits a caller that presents the cluster secret.
// With TLS, the gateway role of the caller's certificate admits it
// instead (checkRole).
func (n *Node) checkClusterSecret(ctx context.Context) error {
	if n.cfg.TLS != nil {
		return nil
	}
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
	if req.Region == "clipstore" && req.Service == "native" {
		return nil, fmt.Errorf("%w: the scope clipstore/native signs native API calls; gateways get S3 scopes only", ErrPermissionDenied)
	}
	if n.cfg.RootAccessKey != "" && subtle.ConstantTimeCompare([]byte(req.AccessKeyId), []byte(n.cfg.RootAccessKey)) == 1 {
		return &pb.SigningKeyResponse{SigningKey: sigv4.DeriveKey(n.cfg.RootSecretKey, req.Date, req.Region, req.Service),
			Grants: rootGrants}, nil
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
	secret, err := n.openSecret(key)
	if err != nil {
		n.log.Error("signing key refused", "access_key_id", req.AccessKeyId, "err", err)
		return nil, err
	}
	return &pb.SigningKeyResponse{SigningKey: sigv4.DeriveKey(secret, req.Date, req.Region, req.Service),
		Grants: key.Grants}, nil
}
