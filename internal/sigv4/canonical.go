package sigv4

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The algorithm names SigV4 puts first in its strings to sign.
const (
	algorithm        = "AWS4-HMAC-SHA256"
	algorithmChunk   = "AWS4-HMAC-SHA256-PAYLOAD"
	algorithmTrailer = "AWS4-HMAC-SHA256-TRAILER"
)

// timeFormat is the ISO 8601 basic format of x-amz-date and X-Amz-Date.
const timeFormat = "20060102T150405Z"

// dateFormat is the format of a credential scope's date.
const dateFormat = "20060102"

// emptySHA256 is the hex SHA-256 of no bytes.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// uriEncode encodes s the way SigV4 wants: the unreserved characters
// A-Z a-z 0-9 - _ . ~ stay, and so does '/' if keepSlash; every other byte
// becomes %XX with uppercase hex (a space is %20, never '+').
func uriEncode(s string, keepSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || (keepSlash && c == '/') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// queryParam is one name=value pair of a query string, decoded.
type queryParam struct{ name, value string }

// parseQuery splits a raw query string into its decoded pairs, in order.
// Pairs are separated by '&' only; a pair without '=' has an empty value;
// '+' decodes to a space, as in every HTML form and S3 client.
func parseQuery(raw string) ([]queryParam, error) {
	var params []queryParam
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		n, err := url.QueryUnescape(name)
		if err != nil {
			return nil, ErrInvalidQuery.with("parameter %q: %v", name, err)
		}
		v, err := url.QueryUnescape(value)
		if err != nil {
			return nil, ErrInvalidQuery.with("value of parameter %q: %v", n, err)
		}
		params = append(params, queryParam{n, v})
	}
	return params, nil
}

// canonicalQuery is the canonical query string of params, leaving out the
// parameter named skip: each name and value URI-encoded, sorted by encoded
// name and then encoded value, joined with '&'.
func canonicalQuery(params []queryParam, skip string) string {
	encoded := make([]queryParam, 0, len(params))
	for _, p := range params {
		if p.name != skip {
			encoded = append(encoded, queryParam{uriEncode(p.name, false), uriEncode(p.value, false)})
		}
	}
	slices.SortFunc(encoded, func(a, b queryParam) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.value, b.value))
	})
	var b strings.Builder
	for i, p := range encoded {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// canonicalURIs returns the canonical URIs a signature of r may cover.
// The first is the path exactly as the client sent it: S3 neither
// normalizes it nor encodes it again, and S3 clients encode keys the SigV4
// way before they send them, so that is what they sign. The second, when
// it differs, is the decoded path encoded the SigV4 way: what a client
// that sends some characters unencoded (say "$" or "=") signs, and what
// the AWS documentation's examples show. Both name the same key.
func canonicalURIs(r *http.Request) []string {
	sent := sentPath(r)
	encoded := uriEncode(r.URL.Path, true)
	if encoded == "" {
		encoded = "/"
	}
	if encoded == sent {
		return []string{sent}
	}
	return []string{sent, encoded}
}

// sentPath is the escaped path of r as it came on the wire: from
// RequestURI on a server request, from the URL otherwise.
func sentPath(r *http.Request) string {
	p := r.URL.EscapedPath()
	if strings.HasPrefix(r.RequestURI, "/") {
		p, _, _ = strings.Cut(r.RequestURI, "?")
	}
	if p == "" {
		return "/"
	}
	return p
}

// canonicalHeaders writes the canonical headers of r for the signed header
// names, in their order: "name:value\n" each, the value trimmed, inner runs
// of spaces collapsed, repeated headers joined with ','.
func canonicalHeaders(b *strings.Builder, r *http.Request, signed []string) {
	for _, name := range signed {
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range headerValues(r, name) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(trimAll(v))
		}
		b.WriteByte('\n')
	}
}

// headerValues returns the values of the header name (lowercase) as the
// client sent them. Go's server moves Host to r.Host and may move
// Content-Length and Transfer-Encoding out of r.Header; they are read back
// from there.
func headerValues(r *http.Request, name string) []string {
	switch name {
	case "host":
		if r.Host != "" {
			return []string{r.Host}
		}
		return []string{r.URL.Host}
	case "content-length":
		if v := r.Header.Values("Content-Length"); len(v) > 0 || r.ContentLength < 0 {
			return v
		}
		return []string{strconv.FormatInt(r.ContentLength, 10)}
	case "transfer-encoding":
		if v := r.Header.Values("Transfer-Encoding"); len(v) > 0 {
			return v
		}
		return r.TransferEncoding
	}
	return r.Header.Values(name)
}

// trimAll trims the whitespace around v and collapses each inner run of
// spaces to one space.
func trimAll(v string) string {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "  ") {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' && i > 0 && v[i-1] == ' ' {
			continue
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// canonicalRequest is the SigV4 canonical request: method, URI, query,
// headers, signed header list and payload hash, one per line.
func canonicalRequest(r *http.Request, uri, query string, signed []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(uri)
	b.WriteByte('\n')
	b.WriteString(query)
	b.WriteByte('\n')
	canonicalHeaders(&b, r, signed)
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// stringToSign is the string a request signature is the HMAC of.
func stringToSign(amzDate, scope, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return algorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
}
