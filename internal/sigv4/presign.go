package sigv4

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Presign returns rawURL presigned for method: valid from now for expires
// (whole seconds, at most MaxExpires), signed by accessKey with signingKey,
// which must be DeriveKey's key for now's UTC date, region and Service.
// headers are signed too (host always is), and whoever uses the URL must
// send them with these values. The payload is UNSIGNED-PAYLOAD unless
// headers has x-amz-content-sha256.
//
// The path is sent encoded the SigV4 way (every byte but A-Z a-z 0-9 - _
// . ~ / as %XX), so rawURL may carry it decoded or encoded; its query
// parameters are kept and signed.
func Presign(method, rawURL string, accessKey string, signingKey []byte, region string,
	now time.Time, expires time.Duration, headers http.Header) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("sigv4: presign: %w", err)
	}
	params, err := parseQuery(u.RawQuery)
	if err == nil {
		err = checkPresignArgs(method, u, params, accessKey, region, expires)
	}
	if err != nil {
		return "", fmt.Errorf("sigv4: presign %s: %w", rawURL, err)
	}
	req := presignRequest(method, u, headers)
	signed := presignSignedHeaders(req.Header)
	t := now.UTC()
	cred := credential{accessKey, t.Format(dateFormat), region, Service}
	params = append(params,
		queryParam{"X-Amz-Algorithm", algorithm},
		queryParam{"X-Amz-Credential", accessKey + "/" + cred.scope()},
		queryParam{"X-Amz-Date", t.Format(timeFormat)},
		queryParam{"X-Amz-Expires", strconv.FormatInt(int64(expires/time.Second), 10)},
		queryParam{"X-Amz-SignedHeaders", strings.Join(signed, ";")},
	)
	path := cmp.Or(uriEncode(u.Path, true), "/")
	query := canonicalQuery(params, "")
	payload := cmp.Or(req.Header.Get("X-Amz-Content-Sha256"), "UNSIGNED-PAYLOAD")
	canonical := canonicalRequest(req, path, query, signed, payload)
	sig := hmacSHA256(signingKey, stringToSign(t.Format(timeFormat), cred.scope(), canonical))
	return u.Scheme + "://" + u.Host + path + "?" + query + "&X-Amz-Signature=" + hex.EncodeToString(sig), nil
}

// presignRequest is the request a presigned URL stands for: method, u,
// and headers (but Host, which is u's).
func presignRequest(method string, u *url.URL, headers http.Header) *http.Request {
	req := &http.Request{Method: method, URL: u, Host: u.Host, Header: http.Header{}}
	for name, values := range headers {
		if !strings.EqualFold(name, "Host") {
			req.Header[http.CanonicalHeaderKey(name)] = values
		}
	}
	return req
}

// checkPresignArgs checks Presign's arguments.
func checkPresignArgs(method string, u *url.URL, params []queryParam, accessKey, region string, expires time.Duration) error {
	switch {
	case method == "":
		return errors.New("no method")
	case u.Scheme == "" || u.Host == "":
		return errors.New("the URL is not absolute")
	case accessKey == "" || strings.Contains(accessKey, "/"):
		return fmt.Errorf("access key %q is empty or contains '/'", accessKey)
	case region == "":
		return errors.New("no region")
	case expires <= 0 || expires > MaxExpires || expires%time.Second != 0:
		return fmt.Errorf("expiry %v is not a whole number of seconds from 1s to %v", expires, MaxExpires)
	}
	for _, p := range params {
		if slices.Contains(presignParamNames, p.name) {
			return fmt.Errorf("the URL already has %s", p.name)
		}
	}
	return nil
}

// presignSignedHeaders is the sorted lowercase list of signed headers: host
// and the names in h.
func presignSignedHeaders(h http.Header) []string {
	signed := []string{"host"}
	for name := range h {
		signed = append(signed, strings.ToLower(name))
	}
	slices.Sort(signed)
	return signed
}
