package sigv4

import (
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxExpires is the longest validity a presigned URL may ask for: seven
// days, as in S3.
const MaxExpires = 7 * 24 * time.Hour

// credential is a parsed Credential: an access key and its scope.
type credential struct {
	accessKey, date, region, service string
}

// scope is the credential scope string, "date/region/service/aws4_request".
func (c credential) scope() string {
	return c.date + "/" + c.region + "/" + c.service + "/aws4_request"
}

// signature is what a request claims about itself: who signed it, when,
// over which headers, and the signature.
type signature struct {
	presigned     bool
	cred          credential
	signedHeaders []string
	sig           []byte // the signature, decoded from hex
	query         []queryParam
	// Presigned only: the X-Amz-Date value and X-Amz-Expires.
	amzDate string
	expires time.Duration
}

// parseAuth finds how r is signed and parses it, without checking any
// signature.
func parseAuth(r *http.Request) (*signature, error) {
	params, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	header := r.Header.Get("Authorization")
	presigned := hasParam(params, "X-Amz-Algorithm") || hasParam(params, "X-Amz-Signature")
	switch {
	case header != "" && presigned:
		return nil, ErrAmbiguousAuth.with("the request has both an Authorization header and X-Amz-* query parameters")
	case header != "":
		return parseHeaderAuth(header, params)
	case presigned:
		return parsePresign(params)
	case hasParam(params, "Signature") || hasParam(params, "AWSAccessKeyId"):
		return nil, ErrUnsupportedAlgorithm.with("query-string Signature Version 2 is not supported")
	}
	return nil, ErrMissingAuth.with("no Authorization header and no X-Amz-Signature query parameter")
}

// param returns the value of the first parameter called name.
func param(params []queryParam, name string) (string, bool) {
	for _, p := range params {
		if p.name == name {
			return p.value, true
		}
	}
	return "", false
}

func hasParam(params []queryParam, name string) bool {
	_, ok := param(params, name)
	return ok
}

// parseHeaderAuth parses an Authorization header:
// "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request,
// SignedHeaders=host;x-amz-date, Signature=<64 hex>".
func parseHeaderAuth(header string, params []queryParam) (*signature, error) {
	algo, rest, _ := strings.Cut(strings.TrimSpace(header), " ")
	if algo != algorithm {
		return nil, ErrUnsupportedAlgorithm.with("Authorization header uses %q", truncate(algo))
	}
	fields, err := authFields(rest)
	if err != nil {
		return nil, err
	}
	s := &signature{query: params}
	bad := ErrMalformedAuthorization
	if s.cred, err = parseCredential(fields["Credential"], bad); err != nil {
		return nil, err
	}
	if s.signedHeaders, err = parseSignedHeaders(fields["SignedHeaders"], bad); err != nil {
		return nil, err
	}
	if s.sig, err = parseSignature(fields["Signature"], bad); err != nil {
		return nil, err
	}
	return s, nil
}

// authFields splits the comma-separated name=value fields of an
// Authorization header; it requires exactly Credential, SignedHeaders and
// Signature.
func authFields(s string) (map[string]string, error) {
	fields := map[string]string{}
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		name, value, ok := strings.Cut(f, "=")
		switch {
		case !ok:
			return nil, ErrMalformedAuthorization.with("field %q is not name=value", truncate(f))
		case name != "Credential" && name != "SignedHeaders" && name != "Signature":
			return nil, ErrMalformedAuthorization.with("unknown field %q", truncate(name))
		case fields[name] != "":
			return nil, ErrMalformedAuthorization.with("field %s appears twice", name)
		}
		fields[name] = value
	}
	for _, name := range []string{"Credential", "SignedHeaders", "Signature"} {
		if fields[name] == "" {
			return nil, ErrMalformedAuthorization.with("missing %s", name)
		}
	}
	return fields, nil
}

// parsePresign reads the X-Amz-* parameters of a presigned URL.
func parsePresign(params []queryParam) (*signature, error) {
	bad := ErrMalformedPresign
	v, err := presignParams(params)
	if err != nil {
		return nil, err
	}
	if v["X-Amz-Algorithm"] != algorithm {
		return nil, ErrUnsupportedAlgorithm.with("X-Amz-Algorithm is %q", truncate(v["X-Amz-Algorithm"]))
	}
	s := &signature{presigned: true, query: params, amzDate: v["X-Amz-Date"]}
	if s.cred, err = parseCredential(v["X-Amz-Credential"], bad); err != nil {
		return nil, err
	}
	if s.signedHeaders, err = parseSignedHeaders(v["X-Amz-SignedHeaders"], bad); err != nil {
		return nil, err
	}
	if s.sig, err = parseSignature(v["X-Amz-Signature"], bad); err != nil {
		return nil, err
	}
	if s.expires, err = parseExpires(v["X-Amz-Expires"]); err != nil {
		return nil, err
	}
	return s, nil
}

// presignParamNames are the query parameters a presigned URL must carry.
var presignParamNames = []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
	"X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"}

// presignParams collects the X-Amz-* parameters a presigned URL must
// carry, each exactly once.
func presignParams(params []queryParam) (map[string]string, error) {
	v := map[string]string{}
	for _, p := range params {
		if !slices.Contains(presignParamNames, p.name) {
			continue
		}
		if _, dup := v[p.name]; dup {
			return nil, ErrMalformedPresign.with("%s appears twice", p.name)
		}
		v[p.name] = p.value
	}
	for _, name := range presignParamNames {
		if v[name] == "" {
			return nil, ErrMalformedPresign.with("missing %s", name)
		}
	}
	return v, nil
}

// parseExpires reads X-Amz-Expires: whole seconds, from 0 to MaxExpires.
func parseExpires(s string) (time.Duration, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case err != nil || n < 0:
		return 0, ErrMalformedPresign.with("X-Amz-Expires %q is not a non-negative number of seconds", truncate(s))
	case n > int64(MaxExpires/time.Second):
		return 0, ErrMalformedPresign.with("X-Amz-Expires must be less than a week (in seconds) that is 604800; it is %d", n)
	}
	return time.Duration(n) * time.Second, nil
}

// parseCredential reads "AKID/YYYYMMDD/region/s3/aws4_request"; bad is the
// sentinel to fail with.
func parseCredential(s string, bad *Error) (credential, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 5 {
		return credential{}, bad.with("credential %q is not access-key/date/region/service/aws4_request", truncate(s))
	}
	c := credential{accessKey: parts[0], date: parts[1], region: parts[2], service: parts[3]}
	switch {
	case c.accessKey == "":
		return credential{}, bad.with("credential %q has no access key", truncate(s))
	case !validDate(c.date):
		return credential{}, bad.with("credential date %q is not a date in the form YYYYMMDD", c.date)
	case c.region == "":
		return credential{}, bad.with("credential %q has no region", truncate(s))
	case c.service != Service:
		return credential{}, bad.with("incorrect service %q; this endpoint belongs to %q", c.service, Service)
	case parts[4] != "aws4_request":
		return credential{}, bad.with("credential %q does not end in aws4_request", truncate(s))
	}
	return c, nil
}

func validDate(s string) bool {
	_, err := time.Parse(dateFormat, s)
	return len(s) == len(dateFormat) && err == nil
}

// parseSignedHeaders reads "host;range;x-amz-date": lowercase names, no
// empty or repeated one, host among them (S3 requires it signed).
func parseSignedHeaders(s string, bad *Error) ([]string, error) {
	names := strings.Split(s, ";")
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		switch {
		case n == "":
			return nil, bad.with("signed headers %q name an empty header", truncate(s))
		case n != strings.ToLower(n):
			return nil, bad.with("signed header %q is not lowercase", truncate(n))
		case seen[n]:
			return nil, bad.with("signed header %q appears twice", truncate(n))
		}
		seen[n] = true
	}
	if !seen["host"] {
		return nil, bad.with("signed headers %q do not include host", truncate(s))
	}
	return names, nil
}

// parseSignature reads a signature: 64 hex digits.
func parseSignature(s string, bad *Error) ([]byte, error) {
	sig, err := hex.DecodeString(s)
	if err != nil || len(sig) != 32 {
		return nil, bad.with("signature %q is not 64 hex digits", truncate(s))
	}
	return sig, nil
}

// truncate shortens a client-supplied string quoted in an error message,
// so that a hostile request cannot make a huge error.
func truncate(s string) string {
	const max = 100
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
