package sigv4

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// maxDeclaredTrailers bounds the names x-amz-trailer may declare.
const maxDeclaredTrailers = 16

// Reader reads the object's bytes out of a request body and verifies them
// as it goes; Auth.Body makes one. A Read that finds the body wrong
// returns an *Error (with or after the bytes it read), never io.EOF, so a
// caller that commits an object only after a clean io.EOF never commits a
// body that failed verification. Errors reading the request body itself
// are returned as they are. A Reader is not safe for concurrent use.
type Reader struct {
	r       io.Reader      // what Read reads: a verifier, a decoder or the body itself
	chunked *chunkedReader // the aws-chunked decoder, or nil
	size    int64
}

// Read reads the object's bytes.
func (r *Reader) Read(p []byte) (int, error) {
	return r.r.Read(p)
}

// Size is the object's length as the request declares it:
// x-amz-decoded-content-length for an aws-chunked body, Content-Length
// otherwise; -1 when unknown.
func (r *Reader) Size() int64 {
	return r.size
}

// Trailers returns the trailing headers of an aws-chunked body once Read
// has returned io.EOF (names canonicalized as in http.Header, the
// x-amz-trailer-signature left out); nil before, or for other bodies.
func (r *Reader) Trailers() http.Header {
	if r.chunked == nil || !r.chunked.done {
		return nil
	}
	return r.chunked.trailers
}

// DeclaredTrailers returns the lowercase names the x-amz-trailer header
// declared. Every one has arrived by the time Read returns io.EOF.
func (r *Reader) DeclaredTrailers() []string {
	if r.chunked == nil {
		return nil
	}
	return r.chunked.declared
}

// Body returns a Reader of the object's bytes in the body of r, which must
// be the request a was verified from:
//
//   - PayloadSigned: the body, hashed as it passes; at its end a Read
//     returns an error matching ErrContentSHA256Mismatch if the SHA-256
//     is not the declared one.
//   - PayloadUnsigned: the body as it is.
//   - The streaming modes: the aws-chunked body decoded; see DESIGN.md.
//
// Body fails with ErrMissingDecodedLength, or ErrMalformedTrailer for a bad
// x-amz-trailer header, before reading anything. Call it once per request.
func (a *Auth) Body(r *http.Request) (*Reader, error) {
	body := r.Body
	if body == nil {
		body = http.NoBody
	}
	switch {
	case a.signing == nil || a.signing.key == nil:
		return nil, errors.New("sigv4: Body of an Auth that Verify did not return")
	case a.Payload == PayloadSigned:
		want, _ := hex.DecodeString(a.ContentSHA256)
		return &Reader{r: &hashReader{r: body, h: sha256.New(), want: want}, size: r.ContentLength}, nil
	case a.Payload == PayloadUnsigned:
		return &Reader{r: body, size: r.ContentLength}, nil
	case a.Payload.Chunked():
		return a.chunkedBody(r, body)
	}
	return nil, fmt.Errorf("sigv4: Body: unknown payload mode %v", a.Payload)
}

// chunkedBody returns a Reader that decodes an aws-chunked body.
func (a *Auth) chunkedBody(r *http.Request, body io.Reader) (*Reader, error) {
	size, err := decodedLength(r)
	if err != nil {
		return nil, err
	}
	declared, err := declaredTrailers(r, a.Payload)
	if err != nil {
		return nil, err
	}
	c := newChunkedReader(body, a, size, declared)
	return &Reader{r: c, chunked: c, size: size}, nil
}

// decodedLength reads x-amz-decoded-content-length.
func decodedLength(r *http.Request) (int64, error) {
	v := r.Header.Get("X-Amz-Decoded-Content-Length")
	if v == "" {
		return 0, ErrMissingDecodedLength.with("the header is missing")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, ErrMissingDecodedLength.with("x-amz-decoded-content-length %q is not a length", truncate(v))
	}
	return n, nil
}

// declaredTrailers reads the trailer names x-amz-trailer declares; only
// the -TRAILER modes may declare any.
func declaredTrailers(r *http.Request, mode PayloadMode) ([]string, error) {
	var names []string
	for _, v := range r.Header.Values("X-Amz-Trailer") {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.ToLower(strings.TrimSpace(name)); name != "" && !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	switch {
	case len(names) > 0 && mode == PayloadStreamingSigned:
		return nil, ErrMalformedTrailer.with("x-amz-trailer declares trailers but x-amz-content-sha256 is %s", mode)
	case len(names) > maxDeclaredTrailers:
		return nil, ErrMalformedTrailer.with("x-amz-trailer declares %d trailers; at most %d are allowed", len(names), maxDeclaredTrailers)
	}
	return names, nil
}

// hashReader passes a body through while hashing it, and checks the hash
// at the end.
type hashReader struct {
	r    io.Reader
	h    hash.Hash
	want []byte
	n    int64 // bytes read, for the error message
	err  error // sticky: the end of the body, or an error
}

func (h *hashReader) Read(p []byte) (int, error) {
	if h.err != nil {
		return 0, h.err
	}
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	if err == io.EOF {
		err = h.check()
	}
	h.err = err
	return n, err
}

// check compares the body's hash with the declared one.
func (h *hashReader) check() error {
	got := h.h.Sum(nil)
	if string(got) != string(h.want) {
		return ErrContentSHA256Mismatch.with("the %d-byte body has SHA-256 %x, the request declared %x", h.n, got, h.want)
	}
	return io.EOF
}
