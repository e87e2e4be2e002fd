package callauth

import (
	"errors"
	"strings"
	"testing"
	"time"

	pb "github.com/clipstore/clipstore/proto/metapb"
)

const (
	testID     = "CSABCDEFGHIJKLMNOPQR"
	testSecret = "a-secret-of-forty-characters-0123456789a"
	method     = "/clipstore.meta.v1.MetaService/GetClip"
)

var t0 = time.Date(2026, 12, 5, 23, 59, 30, 0, time.UTC)

func digestOf(t *testing.T, key string) string {
	t.Helper()
	d, err := Digest(&pb.GetClipRequest{Bucket: "clips", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSignVerify(t *testing.T) {
	d := digestOf(t, "a.mp4")
	h := Sign(testID, testSecret, t0, method, d)
	tests := []struct {
		name   string
		secret string
		method string
		digest string
		now    time.Time
		want   error
	}{
		{"matching", testSecret, method, d, t0, nil},
		{"clock ahead within skew", testSecret, method, d, t0.Add(DefaultSkew), nil},
		{"clock behind within skew", testSecret, method, d, t0.Add(-DefaultSkew), nil},
		{"replayed past the window", testSecret, method, d, t0.Add(DefaultSkew + time.Second), ErrExpired},
		{"from the future", testSecret, method, d, t0.Add(-DefaultSkew - time.Second), ErrExpired},
		{"wrong secret", testSecret + "x", method, d, t0, ErrSignature},
		{"another method", testSecret, "/clipstore.meta.v1.MetaService/DeleteClip", d, t0, ErrSignature},
		{"other arguments", testSecret, method, digestOf(t, "b.mp4"), t0, ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(h)
			if err != nil {
				t.Fatal(err)
			}
			if c.AccessKeyID != testID || c.Date != "20261205" || !c.Time.Equal(t0) {
				t.Fatalf("parsed %+v", c)
			}
			err = c.Verify(SigningKey(tt.secret, c.Date), tt.method, tt.digest, tt.now, DefaultSkew)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDigestIsDeterministic(t *testing.T) {
	req := &pb.CommitPutRequest{Bucket: "b", Key: "k", Size: 12, UserMetadata: map[string]string{}}
	for i := range 50 {
		req.UserMetadata[strings.Repeat("m", i+1)] = "v"
	}
	first, err := Digest(req)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		d, _ := Digest(req)
		if d != first {
			t.Fatal("the digest of one request changed between calls: map order leaked into it")
		}
	}
}

func TestParseRefuses(t *testing.T) {
	good := Sign(testID, testSecret, t0, method, digestOf(t, "a"))
	sig := good[strings.LastIndex(good, "=")+1:]
	for _, v := range []string{
		"",
		"AWS4-HMAC-SHA256 Credential=" + testID + "/20261205, Date=20261205T235930Z, Signature=" + sig,
		Algorithm + " Credential=" + testID + "/20261205, Date=20261205T235930Z",
		Algorithm + " Credential=" + testID + "/20261204, Date=20261205T235930Z, Signature=" + sig,
		Algorithm + " Credential=/20261205, Date=20261205T235930Z, Signature=" + sig,
		Algorithm + " Credential=A B/20261205, Date=20261205T235930Z, Signature=" + sig,
		Algorithm + " Credential=" + testID + "/20261205, Date=2026-12-05, Signature=" + sig,
		Algorithm + " Credential=" + testID + "/20261205, Date=20261205T235930Z, Signature=" + sig[:63],
		Algorithm + " Credential=" + testID + "/20261205, Date=20261205T235930Z, Signature=" + strings.Repeat("g", 64),
		Algorithm + " Date=20261205T235930Z, Credential=" + testID + "/20261205, Signature=" + sig,
		good + strings.Repeat(" ", maxHeader),
	} {
		if _, err := Parse(v); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q): %v, want ErrMalformed", v, err)
		}
	}
}

// FuzzParseVerify: no header value panics the parser or the verifier,
// and one that verifies is the signed one, or signs the same call.
func FuzzParseVerify(f *testing.F) {
	d, _ := Digest(&pb.GetClipRequest{Bucket: "clips", Key: "a"})
	good := Sign(testID, testSecret, t0, method, d)
	f.Add(good)
	f.Add(strings.Replace(good, "Signature=", "Signature=0", 1))
	f.Add(Algorithm + " Credential=x/20000101, Date=20000101T000000Z, Signature=" + strings.Repeat("00", 32))
	f.Add("")
	key := SigningKey(testSecret, "20261205")
	f.Fuzz(func(t *testing.T, v string) {
		c, err := Parse(v)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v is not ErrMalformed", err)
			}
			return
		}
		if err := c.Verify(key, method, d, t0, DefaultSkew); err == nil {
			// Only the true signature of this call verifies.
			if c.AccessKeyID != testID || c.Date != "20261205" || Sign(c.AccessKeyID, testSecret, c.Time, method, d) != v {
				t.Fatalf("a forged header verified: %q", v)
			}
		}
	})
}
