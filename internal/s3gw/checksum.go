package s3gw

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"net/http"
	"slices"
	"strings"

	"github.com/clipstore/clipstore/internal/sigv4"
)

// checksumAlg is one of the checksum algorithms of S3's
// x-amz-checksum-<name> headers.
type checksumAlg struct {
	name string // as in the header name: "crc32c"
	size int    // bytes of the digest
	new  func() hash.Hash
}

// crc64NVME is the CRC-64/NVME table (the reflected polynomial
// 0x9a6c9329ac4bc9b5; hash/crc64 inverts before and after, as it wants).
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

var checksumAlgs = []*checksumAlg{
	{name: "crc32", size: 4, new: func() hash.Hash { return crc32.NewIEEE() }},
	{name: "crc32c", size: 4, new: func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }},
	{name: "crc64nvme", size: 8, new: func() hash.Hash { return crc64.New(crc64NVME) }},
	{name: "sha1", size: sha1.Size, new: sha1.New},
	{name: "sha256", size: sha256.Size, new: sha256.New},
}

// checksumAlgByName returns the algorithm named name (any case), or nil.
func checksumAlgByName(name string) *checksumAlg {
	for _, a := range checksumAlgs {
		if strings.EqualFold(a.name, name) {
			return a
		}
	}
	return nil
}

// header is the name of the algorithm's header and trailer.
func (a *checksumAlg) header() string { return "x-amz-checksum-" + a.name }

// valid reports whether v is a base64 digest of the algorithm's size.
func (a *checksumAlg) valid(v string) bool {
	b, err := base64.StdEncoding.DecodeString(v)
	return err == nil && len(b) == a.size
}

// digests is what a request with a body asks to have checked: its
// Content-MD5, and the one checksum S3 allows, given in a header or a
// trailer, or only named (x-amz-sdk-checksum-algorithm: computed and
// stored, not checked).
type digests struct {
	md5     []byte       // Content-MD5; nil if absent
	alg     *checksumAlg // nil if none
	value   string       // the checksum from the header; "" if none (yet)
	trailer bool         // the value comes in the body's trailer
	// fast: the bucket has fast ETags, so MD5 is hashed only to check a
	// Content-MD5; part: the body is a multipart upload's part.
	fast, part bool
	// newMD5 makes the MD5 hash (the gateway's multi-buffer one); nil:
	// crypto/md5.
	newMD5 func() hash.Hash
}

// checksumSuffixes are x-amz-checksum-* headers that carry no checksum.
var checksumSuffixes = []string{"mode", "type", "algorithm"}

// parseDigests reads the digests r declares; trailers are the names the
// aws-chunked body's x-amz-trailer declared.
func parseDigests(h http.Header, trailers []string) (*digests, error) {
	d := &digests{}
	if v, ok := h["Content-Md5"]; ok {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.Join(v, "")))
		if err != nil || len(b) != md5.Size {
			return nil, errInvalidDigest
		}
		d.md5 = b
	}
	var named []*checksumAlg
	for name, vals := range h {
		lower := strings.ToLower(name)
		suffix, ok := strings.CutPrefix(lower, "x-amz-checksum-")
		if !ok || slices.Contains(checksumSuffixes, suffix) {
			continue
		}
		a := checksumAlgByName(suffix)
		if a == nil {
			return nil, errInvalidRequest.with("The checksum algorithm %q is not supported.", truncate(suffix))
		}
		if len(vals) != 1 || !a.valid(vals[0]) {
			return nil, errInvalidRequest.with("Value for %s header is invalid.", a.header())
		}
		named, d.alg, d.value = append(named, a), a, vals[0]
	}
	for _, t := range trailers {
		if suffix, ok := strings.CutPrefix(t, "x-amz-checksum-"); ok {
			a := checksumAlgByName(suffix)
			if a == nil {
				return nil, errInvalidRequest.with("The checksum algorithm %q is not supported.", truncate(suffix))
			}
			named, d.alg, d.trailer = append(named, a), a, true
		}
	}
	if len(named) > 1 {
		return nil, errInvalidRequest.with("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
	}
	if v := h.Get("X-Amz-Sdk-Checksum-Algorithm"); v != "" {
		a := checksumAlgByName(v)
		if a == nil || (d.alg != nil && d.alg != a) {
			return nil, errInvalidRequest.with("Value for x-amz-sdk-checksum-algorithm header is invalid.")
		}
		d.alg = a
	}
	return d, nil
}

// hashes returns new hashes for the digests: MD5 (unless the ETags are
// fast and no Content-MD5 is to be checked) and the checksum's, if any.
func (d *digests) hashes() []hash.Hash {
	var hs []hash.Hash
	if d.hashesMD5() {
		if d.newMD5 != nil {
			hs = append(hs, d.newMD5())
		} else {
			hs = append(hs, md5.New())
		}
	}
	if d.alg != nil {
		hs = append(hs, d.alg.new())
	}
	return hs
}

func (d *digests) hashesMD5() bool { return !d.fast || d.md5 != nil }

// verified checks the sums of hashes() against the digests, with the
// trailers of the body (nil if none), and returns the ETag to store and
// the checksums. The ETag is the hex MD5; with fast ETags, a random one
// for a part, and "" for an object (the clip id then makes it).
func (d *digests) verified(sums [][]byte, body *sigv4.Reader) (string, map[string]string, error) {
	etag := ""
	switch {
	case d.hashesMD5():
		if d.md5 != nil && !bytes.Equal(d.md5, sums[0]) {
			return "", nil, errBadDigest
		}
		if !d.fast {
			etag = hex.EncodeToString(sums[0])
		}
		sums = sums[1:]
	}
	if d.fast && d.part {
		etag = newFastPartETag()
	}
	if d.alg == nil {
		return etag, nil, nil
	}
	got := base64.StdEncoding.EncodeToString(sums[0])
	want := d.value
	if d.trailer {
		want = body.Trailers().Get(d.alg.header())
		if !d.alg.valid(want) {
			return "", nil, errInvalidRequest.with("Value for %s trailing header is invalid.", d.alg.header())
		}
	}
	if want != "" && want != got {
		return "", nil, errBadDigest.with("The %s you specified did not match the calculated checksum.", strings.ToUpper(d.alg.name))
	}
	return etag, map[string]string{d.alg.name: got}, nil
}
