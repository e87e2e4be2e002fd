package sigv4_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/clipstore/clipstore/internal/sigv4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The AWS documentation's example credentials.
const (
	exampleAccessKey = "AKIAIOSFODNN7EXAMPLE"
	exampleSecret    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

// secretKeys is a KeyFunc over a map from access key to secret, as the
// metadata service would answer it.
func secretKeys(secrets map[string]string) sigv4.KeyFunc {
	return func(_ context.Context, accessKey, date, region, service string) ([]byte, error) {
		secret, ok := secrets[accessKey]
		if !ok {
			return nil, fmt.Errorf("access key %q: %w", accessKey, sigv4.ErrUnknownAccessKey)
		}
		return sigv4.DeriveKey(secret, date, region, service), nil
	}
}

// exampleKeys knows the AWS example access key.
var exampleKeys = secretKeys(map[string]string{exampleAccessKey: exampleSecret})

// readRequest parses a raw HTTP/1.1 request the way net/http's server
// does (RequestURI set, Host moved to r.Host). Lines end in "\n" in raw;
// they are sent with CRLF.
func readRequest(t *testing.T, raw string) *http.Request {
	t.Helper()
	head, body, _ := strings.Cut(raw, "\n\n")
	wire := strings.ReplaceAll(head, "\n", "\r\n") + "\r\n\r\n" + body
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(wire)))
	if err != nil {
		t.Fatalf("parse request: %v", err)
	}
	return r
}

// wantError fails t unless err is an *Error matching want (nil: no error).
func wantError(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		return
	}
	var e *sigv4.Error
	if !errors.Is(err, want) || !errors.As(err, &e) {
		t.Fatalf("got error %v, want %v", err, want)
	}
	w := want.(*sigv4.Error)
	if e.Code != w.Code || e.HTTPStatus != w.HTTPStatus || e.Message == "" {
		t.Fatalf("error %+v does not carry the code and status of %+v", e, w)
	}
}

// readBody reads the whole verified body of r, which must be good.
func readBody(t *testing.T, a *sigv4.Auth, r *http.Request) []byte {
	t.Helper()
	body, err := a.Body(r)
	if err != nil {
		t.Fatalf("Body: %v", err)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return b
}
