package s3gw

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"iter"
	"net/http"
	"strconv"
	"strings"

	"github.com/clipstore/clipstore/client"
)

// maxListKeys is S3's default and largest max-keys.
const maxListKeys = 1000

// listParams are the parameters both listings share.
type listParams struct {
	prefix, delimiter string
	after             string // list what sorts after this (exclusive)
	maxKeys           int
	urlEncode         bool // encoding-type=url
}

// listing is one page of a listing: objects and common prefixes in key
// order, at most maxKeys of them together.
type listing struct {
	objects   []*client.ClipEntry
	prefixes  []string
	truncated bool
	last      string // the last key or common prefix of the page
}

type listEntry struct {
	Key          string
	LastModified string
	ETag         string
	Size         int64
	StorageClass string
}

type commonPrefix struct {
	Prefix string
}

type listV2Result struct {
	XMLName               xml.Name `xml:"ListBucketResult"`
	NS                    string   `xml:"xmlns,attr"`
	Name                  string
	Prefix                string
	Delimiter             string `xml:",omitempty"`
	MaxKeys               int
	EncodingType          string `xml:",omitempty"`
	KeyCount              int
	ContinuationToken     string `xml:",omitempty"`
	NextContinuationToken string `xml:",omitempty"`
	StartAfter            string `xml:",omitempty"`
	IsTruncated           bool
	Contents              []listEntry
	CommonPrefixes        []commonPrefix
}

type listV1Result struct {
	XMLName        xml.Name `xml:"ListBucketResult"`
	NS             string   `xml:"xmlns,attr"`
	Name           string
	Prefix         string
	Marker         string
	NextMarker     string `xml:",omitempty"`
	Delimiter      string `xml:",omitempty"`
	MaxKeys        int
	EncodingType   string `xml:",omitempty"`
	IsTruncated    bool
	Contents       []listEntry
	CommonPrefixes []commonPrefix
}

func (g *Gateway) listObjectsV2(w *response, req *request) error {
	q := req.query
	p, err := parseListParams(q)
	if err != nil {
		return err
	}
	token, hasToken := q.Get("continuation-token"), q.Has("continuation-token")
	p.after = q.Get("start-after")
	if hasToken {
		after, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || token == "" {
			return errInvalidArgument.with("The continuation token provided is incorrect")
		}
		p.after = string(after)
	}
	l, err := g.list(req.Context(), req.bucket, p)
	if err != nil {
		return err
	}
	enc := p.encoder()
	res := listV2Result{NS: xmlNS, Name: req.bucket, Prefix: enc(p.prefix), Delimiter: enc(p.delimiter), MaxKeys: p.maxKeys,
		KeyCount: len(l.objects) + len(l.prefixes), ContinuationToken: token, StartAfter: enc(q.Get("start-after")),
		IsTruncated: l.truncated}
	if p.urlEncode {
		res.EncodingType = "url"
	}
	if l.truncated {
		res.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(l.last))
	}
	res.Contents, res.CommonPrefixes = l.entries(enc)
	writeXML(w, http.StatusOK, res)
	return nil
}

func (g *Gateway) listObjectsV1(w *response, req *request) error {
	p, err := parseListParams(req.query)
	if err != nil {
		return err
	}
	p.after = req.query.Get("marker")
	l, err := g.list(req.Context(), req.bucket, p)
	if err != nil {
		return err
	}
	enc := p.encoder()
	res := listV1Result{NS: xmlNS, Name: req.bucket, Prefix: enc(p.prefix), Marker: enc(p.after), Delimiter: enc(p.delimiter),
		MaxKeys: p.maxKeys, IsTruncated: l.truncated}
	if p.urlEncode {
		res.EncodingType = "url"
	}
	if l.truncated && p.delimiter != "" { // without one, the last key is the next marker
		res.NextMarker = enc(l.last)
	}
	res.Contents, res.CommonPrefixes = l.entries(enc)
	writeXML(w, http.StatusOK, res)
	return nil
}

func parseListParams(q map[string][]string) (listParams, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	p := listParams{prefix: get("prefix"), delimiter: get("delimiter"), maxKeys: maxListKeys}
	if v := get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, errInvalidArgument.with("Provided max-keys not an integer or within integer range")
		}
		p.maxKeys = min(n, maxListKeys)
	}
	switch get("encoding-type") {
	case "":
	case "url":
		p.urlEncode = true
	default:
		return p, errInvalidArgument.with("Invalid Encoding Method specified in Request")
	}
	return p, nil
}

func (l *listing) entries(enc func(string) string) ([]listEntry, []commonPrefix) {
	objs := make([]listEntry, 0, len(l.objects))
	for _, e := range l.objects {
		objs = append(objs, listEntry{Key: enc(e.Key), LastModified: lastModified(e.Created).Format(s3Time),
			ETag: quoteETag(objectETag(e.ETag, e.ClipID)), Size: e.Size, StorageClass: "STANDARD"})
	}
	prefixes := make([]commonPrefix, 0, len(l.prefixes))
	for _, p := range l.prefixes {
		prefixes = append(prefixes, commonPrefix{Prefix: enc(p)})
	}
	return objs, prefixes
}

// defaultSkipBudget is how many keys under one common prefix a listing
// steps over in the page it has before it asks for a new listing after the
// whole prefix instead: stepping is free within a page, a new listing
// costs a round trip to meta.
const defaultSkipBudget = 64

// list lists one page: the keys under p.prefix after p.after, those with
// p.delimiter after the prefix rolled up into common prefixes. A common
// prefix is listed only if it sorts after p.after, so that a page that
// ended with one resumes after all of its keys.
func (g *Gateway) list(ctx context.Context, bucket string, p listParams) (*listing, error) {
	l := &listing{}
	if p.maxKeys == 0 {
		return l, g.checkBucket(ctx, bucket) // a listing of nothing still needs the bucket
	}
	start := p.after
	if cp := p.commonPrefix(start); cp != "" {
		start = pastPrefix(cp)
	}
	for {
		restart, err := l.fill(g.cfg.Client.ListFrom(ctx, bucket, p.prefix, start), p, g.skipBudget)
		if err != nil || restart == "" {
			return l, err
		}
		start = restart
	}
}

// fill adds the entries of a listing to l until it is full (one more
// entry found: truncated) or the listing ends. It returns where to list
// from next when it leaves the listing to skip a common prefix with many
// keys (more than budget in a row), else "".
func (l *listing) fill(entries iter.Seq2[*client.ClipEntry, error], p listParams, budget int) (string, error) {
	skipped := 0
	for e, err := range entries {
		if err != nil {
			return "", err
		}
		if cp := p.commonPrefix(e.Key); cp != "" {
			if len(l.prefixes) > 0 && cp == l.prefixes[len(l.prefixes)-1] {
				if skipped++; skipped > budget {
					return pastPrefix(cp), nil
				}
				continue
			}
			if l.count() == p.maxKeys {
				l.truncated = true
				return "", nil
			}
			l.prefixes = append(l.prefixes, cp)
			l.last, skipped = cp, 0
			continue
		}
		if l.count() == p.maxKeys {
			l.truncated = true
			return "", nil
		}
		l.objects = append(l.objects, e)
		l.last = e.Key
	}
	return "", nil
}

func (l *listing) count() int { return len(l.objects) + len(l.prefixes) }

// commonPrefix returns the common prefix key rolls up into: p.prefix and
// what follows up to the first p.delimiter, included; "" if none.
func (p listParams) commonPrefix(key string) string {
	if p.delimiter == "" || !strings.HasPrefix(key, p.prefix) {
		return ""
	}
	i := strings.Index(key[len(p.prefix):], p.delimiter)
	if i < 0 {
		return ""
	}
	return key[:len(p.prefix)+i+len(p.delimiter)]
}

// pastPrefix returns a key that sorts after every key starting with
// prefix and before every other key that sorts after prefix, for a listing
// to start after. Keys are valid UTF-8 (meta refuses others, and the
// protocol's strings must be), so no byte 0xff can follow prefix; but the
// key must be valid UTF-8 too. The largest code point, U+10FFFF, is the
// largest 4-byte sequence: keys up to maxKeyLen bytes that start with
// prefix and sort after prefix followed by maxKeyLen/4 of them would have
// to be longer than maxKeyLen.
func pastPrefix(prefix string) string {
	return prefix + strings.Repeat("\U0010FFFF", maxKeyLen/4)
}

// encoder returns how the listing writes keys and prefixes: as they are,
// or URL-encoded (encoding-type=url) for keys XML cannot carry.
func (p listParams) encoder() func(string) string {
	if !p.urlEncode {
		return func(s string) string { return s }
	}
	return urlEncode
}

// urlEncode percent-encodes every byte but the unreserved characters and
// '/', as S3's encoding-type=url does.
func urlEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}
