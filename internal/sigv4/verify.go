package sigv4

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// MaxSkew is how far a header-signed request's time may be from the
// server's, either way, and how far in the future a presigned URL may be
// dated: 15 minutes, as in S3.
const MaxSkew = 15 * time.Minute

// PayloadMode is how a request's body is covered by its signature: the
// value of x-amz-content-sha256.
type PayloadMode int

// The payload modes S3 knows.
const (
	// PayloadSigned: x-amz-content-sha256 is the hex SHA-256 of the whole
	// body, covered by the signature.
	PayloadSigned PayloadMode = iota + 1
	// PayloadUnsigned: UNSIGNED-PAYLOAD; the body is not covered. The mode
	// of presigned URLs.
	PayloadUnsigned
	// PayloadStreamingSigned: STREAMING-AWS4-HMAC-SHA256-PAYLOAD; an
	// aws-chunked body whose chunks are each signed, chained from the
	// request's signature.
	PayloadStreamingSigned
	// PayloadStreamingSignedTrailer:
	// STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER; signed chunks followed
	// by trailing headers and their signature.
	PayloadStreamingSignedTrailer
	// PayloadStreamingUnsignedTrailer: STREAMING-UNSIGNED-PAYLOAD-TRAILER;
	// unsigned aws-chunked chunks followed by unsigned trailing headers
	// (a checksum, which TLS protects in transit).
	PayloadStreamingUnsignedTrailer
)

// payloadModes maps each x-amz-content-sha256 keyword to its mode.
var payloadModes = map[string]PayloadMode{
	"UNSIGNED-PAYLOAD":                           PayloadUnsigned,
	"STREAMING-AWS4-HMAC-SHA256-PAYLOAD":         PayloadStreamingSigned,
	"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER": PayloadStreamingSignedTrailer,
	"STREAMING-UNSIGNED-PAYLOAD-TRAILER":         PayloadStreamingUnsignedTrailer,
}

// String returns the x-amz-content-sha256 keyword of m, or "SHA-256" for
// PayloadSigned.
func (m PayloadMode) String() string {
	if m == PayloadSigned {
		return "SHA-256"
	}
	for k, v := range payloadModes {
		if v == m {
			return k
		}
	}
	return fmt.Sprintf("PayloadMode(%d)", int(m))
}

// Chunked reports whether a body in mode m is aws-chunked.
func (m PayloadMode) Chunked() bool {
	return m == PayloadStreamingSigned || m == PayloadStreamingSignedTrailer || m == PayloadStreamingUnsignedTrailer
}

// Auth is an authenticated request: who signed it, for which scope, and
// how its body is covered. Body decodes the body accordingly.
type Auth struct {
	// AccessKey signed the request.
	AccessKey string
	// Region, Date (YYYYMMDD) and Service are the credential scope.
	Region, Date, Service string
	// Time is when the request says it was signed (x-amz-date, Date or
	// X-Amz-Date).
	Time time.Time
	// SignedHeaders are the lowercase names of the signed headers.
	SignedHeaders []string
	// Presigned tells a presigned URL from an Authorization header.
	Presigned bool
	// Expires is when a presigned URL stops being valid; zero otherwise.
	Expires time.Time
	// SecurityToken is the x-amz-security-token header or
	// X-Amz-Security-Token parameter, for the caller to check: it is
	// covered by the signature, nothing more.
	SecurityToken string
	// Payload is the payload mode.
	Payload PayloadMode
	// ContentSHA256 is the declared lowercase hex SHA-256 of the body when
	// Payload is PayloadSigned; empty otherwise.
	ContentSHA256 string
	// Signature is the request's hex signature: the seed signature of an
	// aws-chunked body.
	Signature string

	signing *signing
}

// signing is what checking the signatures of an aws-chunked body needs.
// Auth keeps it behind a pointer, so that printing an Auth does not print
// the key.
type signing struct {
	key     []byte // the signing key of the scope
	amzDate string // the request time as the strings to sign have it
}

// scope is a's credential scope string.
func (a *Auth) scope() string {
	return credential{a.AccessKey, a.Date, a.Region, a.Service}.scope()
}

// Verify authenticates r, signed with an Authorization header or a
// presigned query string, at the time now, with the signing keys keys
// gives. It reads neither r.Body nor anything but the request line and
// headers; Auth.Body verifies the body. An authentication failure is an
// *Error matching one of the package's sentinels; a KeyFunc failure other
// than ErrUnknownAccessKey is returned wrapped.
func Verify(ctx context.Context, r *http.Request, now time.Time, keys KeyFunc) (*Auth, error) {
	s, err := parseAuth(r)
	if err != nil {
		return nil, err
	}
	a := &Auth{
		AccessKey: s.cred.accessKey, Region: s.cred.region, Date: s.cred.date, Service: s.cred.service,
		SignedHeaders: s.signedHeaders, Presigned: s.presigned, Signature: hex.EncodeToString(s.sig),
		signing: &signing{},
	}
	if err := a.checkTime(r, s, now); err != nil {
		return nil, err
	}
	payloadHash, err := a.checkHeaders(r, s)
	if err != nil {
		return nil, err
	}
	if a.signing.key, err = signingKey(ctx, keys, s.cred); err != nil {
		return nil, err
	}
	if err := a.checkSignature(r, s, payloadHash); err != nil {
		return nil, err
	}
	return a, nil
}

// checkTime reads the request time, checks it against the credential date
// and now, and sets a.Time, a.Expires and the time of the strings to sign.
func (a *Auth) checkTime(r *http.Request, s *signature, now time.Time) error {
	t, amzDate, err := requestTime(r, s)
	if err != nil {
		return err
	}
	a.Time, a.signing.amzDate = t, amzDate
	if d := t.Format(dateFormat); d != s.cred.date {
		bad := ErrMalformedAuthorization
		if s.presigned {
			bad = ErrMalformedPresign
		}
		return bad.with("credential date %s is not the date of the request time %s", s.cred.date, amzDate)
	}
	if !s.presigned {
		if skew := now.Sub(t).Abs(); skew > MaxSkew {
			return ErrRequestTimeTooSkewed.with("request time %s is %v from server time %s; at most %v is allowed",
				amzDate, skew.Round(time.Second), now.UTC().Format(timeFormat), MaxSkew)
		}
		return nil
	}
	a.Expires = t.Add(s.expires)
	if t.Sub(now) > MaxSkew {
		return ErrRequestNotYetValid.with("X-Amz-Date %s is more than %v after server time %s", amzDate, MaxSkew, now.UTC().Format(timeFormat))
	}
	if now.After(a.Expires) {
		return ErrRequestExpired.with("signed at %s for %d seconds, expired at %s; server time is %s",
			amzDate, int64(s.expires/time.Second), a.Expires.Format(timeFormat), now.UTC().Format(timeFormat))
	}
	return nil
}

// requestTime returns when r says it was signed, and that time as the
// string to sign has it: X-Amz-Date for a presigned URL; x-amz-date, or
// else Date, for a header-signed request.
func requestTime(r *http.Request, s *signature) (time.Time, string, error) {
	if s.presigned {
		t, err := time.Parse(timeFormat, s.amzDate)
		if err != nil {
			return time.Time{}, "", ErrMalformedPresign.with("X-Amz-Date %q is not in the form YYYYMMDDTHHMMSSZ", truncate(s.amzDate))
		}
		return t, s.amzDate, nil
	}
	if v := r.Header.Get("X-Amz-Date"); v != "" {
		t, err := time.Parse(timeFormat, v)
		if err != nil {
			return time.Time{}, "", ErrMissingDate.with("x-amz-date %q is not in the form YYYYMMDDTHHMMSSZ", truncate(v))
		}
		return t, v, nil
	}
	v := r.Header.Get("Date")
	if v == "" {
		return time.Time{}, "", ErrMissingDate.with("missing date: the request has neither x-amz-date nor Date")
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return time.Time{}, "", ErrMissingDate.with("Date %q is not an HTTP date", truncate(v))
	}
	t = t.UTC()
	return t, t.Format(timeFormat), nil
}

// checkHeaders checks what S3 requires of the headers: every x-amz-*
// header signed, and x-amz-content-sha256 on a header-signed request. It
// sets the payload fields of a and returns the payload hash of the
// canonical request.
func (a *Auth) checkHeaders(r *http.Request, s *signature) (string, error) {
	var unsigned []string
	for name := range r.Header {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "x-amz-") && !slices.Contains(s.signedHeaders, lower) {
			unsigned = append(unsigned, lower)
		}
	}
	if len(unsigned) > 0 {
		slices.Sort(unsigned)
		return "", ErrHeadersNotSigned.with("%s", strings.Join(unsigned, ", "))
	}
	a.SecurityToken = r.Header.Get("X-Amz-Security-Token")
	if v, ok := param(s.query, "X-Amz-Security-Token"); ok && s.presigned {
		a.SecurityToken = v
	}
	hash := r.Header.Get("X-Amz-Content-Sha256")
	switch {
	case hash == "" && s.presigned:
		hash = "UNSIGNED-PAYLOAD"
	case hash == "":
		return "", ErrMissingContentSHA256.with("a header-signed request must declare its payload")
	}
	return hash, a.setPayload(hash)
}

// setPayload sets a's payload mode from an x-amz-content-sha256 value.
func (a *Auth) setPayload(hash string) error {
	if m, ok := payloadModes[hash]; ok {
		a.Payload = m
		return nil
	}
	if sum, err := hex.DecodeString(hash); err == nil && len(sum) == 32 {
		a.Payload, a.ContentSHA256 = PayloadSigned, hex.EncodeToString(sum)
		return nil
	}
	return ErrInvalidContentSHA256.with("it is %q", truncate(hash))
}

// signingKey asks keys for the signing key of the credential's scope.
func signingKey(ctx context.Context, keys KeyFunc, c credential) ([]byte, error) {
	key, err := keys(ctx, c.accessKey, c.date, c.region, c.service)
	switch {
	case errors.Is(err, ErrUnknownAccessKey):
		return nil, ErrUnknownAccessKey.with("access key %q", truncate(c.accessKey))
	case err != nil:
		return nil, fmt.Errorf("sigv4: signing key of access key %q for %s: %w", c.accessKey, c.scope(), err)
	}
	return key, nil
}

// checkSignature compares the signature of r with the one its canonical
// request gives under a's key, for each canonical URI r may have been
// signed with.
func (a *Auth) checkSignature(r *http.Request, s *signature, payloadHash string) error {
	skip := ""
	if s.presigned {
		skip = "X-Amz-Signature"
	}
	query := canonicalQuery(s.query, skip)
	for _, uri := range canonicalURIs(r) {
		canonical := canonicalRequest(r, uri, query, s.signedHeaders, payloadHash)
		sts := stringToSign(a.signing.amzDate, a.scope(), canonical)
		if hmac.Equal(hmacSHA256(a.signing.key, sts), s.sig) {
			return nil
		}
	}
	return ErrSignatureMismatch.with("access key %q, signed headers %s", truncate(a.AccessKey), strings.Join(s.signedHeaders, ";"))
}
