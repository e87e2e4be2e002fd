// Package callauth signs and verifies native API calls with an access key,
// the same keys the S3 gateway takes, and no secret on the wire.
//
// A call carries, in its gRPC metadata under Header,
//
//	CS1-HMAC-SHA256 Credential=<access key id>/<YYYYMMDD>, Date=<YYYYMMDDTHHMMSSZ>, Signature=<64 hex digits>
//
// The signature is an HMAC-SHA256, under the key's signing key for the
// credential's date (SigV4's derivation, region "clipstore", service
// "native": a gateway's S3 signing keys cannot sign native calls), of
//
//	CS1-HMAC-SHA256 \n <Date> \n <access key id>/<YYYYMMDD> \n <full gRPC method> \n <hex SHA-256 of the request>
//
// where the request is the message's deterministic protobuf encoding. A
// signature binds the call's method, arguments and time: it cannot be
// used for another call, and a verifier refuses a Date more than its
// clock skew away from its clock, so a captured call replays only within
// that window (and the links are TLS).
//
// A trusted caller (an S3 gateway, or a meta member forwarding a call it
// has verified) may instead assert the principal it acts for under
// PrincipalHeader; the verifier takes the assertion only from a
// certificate with such a role.
package callauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/clipstore/clipstore/internal/sigv4"
	"google.golang.org/protobuf/proto"
)

// Header is the gRPC metadata key of a call's signature.
const Header = "clipstore-auth"

// PrincipalHeader is the gRPC metadata key under which a gateway or a
// meta member names the access key it acts for.
const PrincipalHeader = "clipstore-on-behalf-of"

// Algorithm names the scheme, first in Header.
const Algorithm = "CS1-HMAC-SHA256"

// DefaultSkew is how far a call's Date may be from the verifier's clock.
const DefaultSkew = 5 * time.Minute

const (
	region    = "clipstore"
	service   = "native"
	dateFmt   = "20060102"
	timeFmt   = "20060102T150405Z"
	maxHeader = 512
)

// ErrMalformed is a Header value that does not parse.
var ErrMalformed = errors.New("malformed signature header")

// ErrSignature is a signature that does not match the call.
var ErrSignature = errors.New("the call's signature does not match (wrong secret, or the call was changed)")

// ErrExpired is a Date outside the verifier's clock skew.
var ErrExpired = errors.New("the call's signature date is outside the allowed clock skew")

// Credential is a parsed Header value.
type Credential struct {
	AccessKeyID string
	Date        string    // YYYYMMDD, the signing key's scope
	Time        time.Time // when the call was signed
	Signature   []byte
}

// SigningKey derives an access key's signing key for one date (YYYYMMDD).
func SigningKey(secret, date string) []byte {
	return sigv4.DeriveKey(secret, date, region, service)
}

// Digest is the hex SHA-256 of a request's deterministic encoding.
func Digest(req proto.Message) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// stringToSign is what the signature covers.
func stringToSign(c Credential, method, digest string) string {
	return Algorithm + "\n" + c.Time.UTC().Format(timeFmt) + "\n" + c.AccessKeyID + "/" + c.Date + "\n" + method + "\n" + digest
}

func mac(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// Sign returns the Header value that signs a call of method with the
// request whose Digest is digest, at now, with the key pair id, secret.
func Sign(id, secret string, now time.Time, method, digest string) string {
	now = now.UTC().Truncate(time.Second)
	c := Credential{AccessKeyID: id, Date: now.Format(dateFmt), Time: now}
	sig := mac(SigningKey(secret, c.Date), stringToSign(c, method, digest))
	return fmt.Sprintf("%s Credential=%s/%s, Date=%s, Signature=%s", Algorithm, id, c.Date, now.Format(timeFmt), hex.EncodeToString(sig))
}

// Parse reads a Header value. It checks the form only; Verify checks the
// signature.
func Parse(v string) (Credential, error) {
	var c Credential
	if len(v) > maxHeader {
		return c, fmt.Errorf("%w: %d bytes", ErrMalformed, len(v))
	}
	rest, ok := strings.CutPrefix(v, Algorithm+" ")
	if !ok {
		return c, fmt.Errorf("%w: the scheme is not %s", ErrMalformed, Algorithm)
	}
	fields := strings.Split(rest, ", ")
	if len(fields) != 3 {
		return c, fmt.Errorf("%w: want Credential, Date and Signature", ErrMalformed)
	}
	var cred, date, sig string
	for i, want := range []string{"Credential=", "Date=", "Signature="} {
		val, ok := strings.CutPrefix(fields[i], want)
		if !ok {
			return c, fmt.Errorf("%w: field %d is not %s…", ErrMalformed, i+1, want)
		}
		switch i {
		case 0:
			cred = val
		case 1:
			date = val
		case 2:
			sig = val
		}
	}
	id, day, ok := strings.Cut(cred, "/")
	if !ok || id == "" || len(id) > 128 || !validID(id) {
		return c, fmt.Errorf("%w: the credential is not ACCESS_KEY_ID/YYYYMMDD", ErrMalformed)
	}
	t, err := time.Parse(timeFmt, date)
	if err != nil {
		return c, fmt.Errorf("%w: the date is not YYYYMMDDTHHMMSSZ", ErrMalformed)
	}
	if t.Format(dateFmt) != day {
		return c, fmt.Errorf("%w: the credential's day is not the date's", ErrMalformed)
	}
	if len(sig) != 2*sha256.Size {
		return c, fmt.Errorf("%w: the signature is not %d hex digits", ErrMalformed, 2*sha256.Size)
	}
	raw, err := hex.DecodeString(sig)
	if err != nil {
		return c, fmt.Errorf("%w: the signature is not hex", ErrMalformed)
	}
	return Credential{AccessKeyID: id, Date: day, Time: t, Signature: raw}, nil
}

// validID reports whether id is printable ASCII without the header's
// separators ('/', ',' and spaces).
func validID(id string) bool {
	for i := 0; i < len(id); i++ {
		if b := id[i]; b <= ' ' || b >= 0x7f || b == '/' || b == ',' {
			return false
		}
	}
	return true
}

// Verify checks that c signs a call of method with the request whose
// Digest is digest, under signingKey (SigningKey of the key's secret and
// c.Date), and that c.Time is within skew of now.
func (c Credential) Verify(signingKey []byte, method, digest string, now time.Time, skew time.Duration) error {
	if d := now.Sub(c.Time); d > skew || d < -skew {
		return fmt.Errorf("%w (signed at %s, %s off this server's clock; at most %s)", ErrExpired,
			c.Time.UTC().Format(time.RFC3339), d.Round(time.Second), skew)
	}
	if !hmac.Equal(mac(signingKey, stringToSign(c, method, digest)), c.Signature) {
		return ErrSignature
	}
	return nil
}
