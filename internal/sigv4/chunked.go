package sigv4

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net/http"
	"slices"
	"strings"
)

// Limits on what an aws-chunked body may make the decoder hold.
const (
	// MaxChunkSize is the largest signed chunk accepted: the bytes handed
	// out before a signature is checked. Unsigned chunks are bounded by
	// x-amz-decoded-content-length only (SDKs send a whole object as one
	// chunk); the decoder never buffers a chunk either way.
	MaxChunkSize = 16 << 20
	// maxLineLength bounds a chunk header or trailer line, CRLF included.
	maxLineLength = 4 << 10
	// maxTrailerBytes bounds all trailer lines together.
	maxTrailerBytes = 16 << 10
	// bufferSize is the decoder's read buffer.
	bufferSize = 32 << 10
)

// chunkedReader decodes an aws-chunked body: chunks of
// "hex-size[;chunk-signature=sig]\r\n" + data + "\r\n", a final chunk of
// size 0, then trailer lines "name:value\r\n" and an empty line. It hands
// out each chunk's bytes as they arrive, hashing them, and checks the
// chunk's signature when its last byte is read; see DESIGN.md.
type chunkedReader struct {
	br       *bufio.Reader
	mode     PayloadMode
	declared []string // trailer names x-amz-trailer declared

	// The signature chain; unused in PayloadStreamingUnsignedTrailer.
	mac     hash.Hash // HMAC-SHA256 under the signing key
	prefix  string    // the strings to sign's common part: date and scope
	prevSig []byte    // the previous signature in the chain

	want, got int64     // declared and decoded lengths
	chunks    int       // chunks begun, for error messages
	left      int64     // bytes of the current chunk still to read
	sum       hash.Hash // SHA-256 of the current chunk
	chunkSig  []byte    // the current chunk's signature

	trailers http.Header
	done     bool  // the body ended cleanly
	err      error // sticky: io.EOF once done, or the failure
}

func newChunkedReader(body io.Reader, a *Auth, want int64, declared []string) *chunkedReader {
	sig, _ := hex.DecodeString(a.Signature)
	return &chunkedReader{
		br:       bufio.NewReaderSize(body, bufferSize),
		mode:     a.Payload,
		declared: declared,
		mac:      hmac.New(sha256.New, a.signing.key),
		prefix:   a.signing.amzDate + "\n" + a.scope() + "\n",
		prevSig:  sig,
		want:     want,
		sum:      sha256.New(),
	}
}

// signed reports whether chunks carry signatures.
func (c *chunkedReader) signed() bool {
	return c.mode != PayloadStreamingUnsignedTrailer
}

// Read reads the decoded bytes of the body.
func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.left == 0 {
		if c.err = c.beginChunk(); c.err != nil {
			return 0, c.err
		}
	}
	n, err := c.readData(p)
	c.err = err
	return n, err
}

// readData reads bytes of the current chunk into p, and ends the chunk
// when its last byte is read.
func (c *chunkedReader) readData(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	if c.signed() {
		c.sum.Write(p[:n])
	}
	c.left -= int64(n)
	c.got += int64(n)
	switch {
	case c.left == 0:
		return n, c.endChunk()
	case errors.Is(err, io.EOF):
		return n, ErrIncompleteBody.with("the body ended inside chunk %d, %d bytes short", c.chunks, c.left)
	case err != nil:
		return n, err
	}
	return n, nil
}

// beginChunk reads the next chunk header. At the final chunk it finishes
// the body and returns io.EOF.
func (c *chunkedReader) beginChunk() error {
	line, err := c.readLine()
	switch {
	case errors.Is(err, io.EOF) && len(line) == 0:
		return ErrIncompleteBody.with("the body ended after %d decoded bytes without its final chunk", c.got)
	case err != nil:
		return c.lineError(err, "a chunk header", ErrMalformedChunk)
	}
	c.chunks++
	size, sig, err := c.parseChunkHeader(line)
	if err != nil {
		return err
	}
	c.left, c.chunkSig = size, sig
	c.sum.Reset()
	if size == 0 {
		return c.finish()
	}
	return nil
}

// parseChunkHeader reads "hex-size;chunk-signature=sig" (the signed
// modes) or "hex-size" (chunk extensions ignored) and checks the size.
func (c *chunkedReader) parseChunkHeader(line []byte) (int64, []byte, error) {
	sizeField, ext, hasExt := bytes.Cut(line, []byte(";"))
	size, ok := parseHexSize(sizeField)
	if !ok {
		return 0, nil, ErrMalformedChunk.with("chunk %d: size %q is not 1 to 16 hex digits", c.chunks, truncate(string(sizeField)))
	}
	var sig []byte
	if c.signed() {
		v, found := bytes.CutPrefix(ext, []byte("chunk-signature="))
		if sig = decodeSignature(v); !hasExt || !found || sig == nil {
			return 0, nil, ErrMalformedChunk.with("chunk %d: header %q lacks chunk-signature=<64 hex digits>", c.chunks, truncate(string(line)))
		}
	}
	switch {
	case c.signed() && size > MaxChunkSize:
		return 0, nil, ErrMalformedChunk.with("chunk %d: %d bytes is more than the %d a signed chunk may hold", c.chunks, size, MaxChunkSize)
	case size > uint64(c.want-c.got):
		return 0, nil, ErrIncompleteBody.with("chunk %d: %d bytes would take the body past x-amz-decoded-content-length %d",
			c.chunks, size, c.want)
	}
	return int64(size), sig, nil
}

// decodeSignature decodes a signature of 64 hex digits, or returns nil.
func decodeSignature(hexSig []byte) []byte {
	sig := make([]byte, 32)
	if len(hexSig) != 64 {
		return nil
	}
	if _, err := hex.Decode(sig, hexSig); err != nil {
		return nil
	}
	return sig
}

// parseHexSize parses a chunk size: 1 to 16 hex digits, nothing else.
func parseHexSize(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var n uint64
	for _, d := range b {
		switch {
		case '0' <= d && d <= '9':
			d -= '0'
		case 'a' <= d && d <= 'f':
			d -= 'a' - 10
		case 'A' <= d && d <= 'F':
			d -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(d)
	}
	return n, true
}

// endChunk reads the CRLF after a chunk's data and checks its signature.
func (c *chunkedReader) endChunk() error {
	crlf, err := c.br.Peek(2)
	switch {
	case errors.Is(err, io.EOF):
		return ErrIncompleteBody.with("the body ended after the data of chunk %d", c.chunks)
	case err != nil:
		return err
	case crlf[0] != '\r' || crlf[1] != '\n':
		return ErrMalformedChunk.with("chunk %d: its data is not followed by CRLF; the size is wrong", c.chunks)
	}
	c.br.Discard(2)
	return c.checkChunkSignature()
}

// checkChunkSignature checks the current chunk's signature, chained from
// the previous one, over the SHA-256 of its data.
func (c *chunkedReader) checkChunkSignature() error {
	if !c.signed() {
		return nil
	}
	sts := algorithmChunk + "\n" + c.prefix + hex.EncodeToString(c.prevSig) + "\n" +
		emptySHA256 + "\n" + hex.EncodeToString(c.sum.Sum(nil))
	if !c.signs(sts, c.chunkSig) {
		return ErrSignatureMismatch.with("chunk %d: chunk-signature does not match its data", c.chunks)
	}
	c.prevSig = c.chunkSig
	return nil
}

// signs reports whether sig is the signature of the string to sign sts.
func (c *chunkedReader) signs(sts string, sig []byte) bool {
	c.mac.Reset()
	c.mac.Write([]byte(sts))
	return hmac.Equal(c.mac.Sum(nil), sig)
}

// finish ends the body after the final chunk's header: the final chunk's
// signature, the decoded length, the trailers, and nothing after them.
func (c *chunkedReader) finish() error {
	if err := c.checkChunkSignature(); err != nil {
		return err
	}
	if c.got != c.want {
		return ErrIncompleteBody.with("the decoded body has %d bytes; x-amz-decoded-content-length is %d", c.got, c.want)
	}
	if err := c.readTrailers(); err != nil {
		return err
	}
	if _, err := c.br.ReadByte(); err == nil {
		return ErrMalformedChunk.with("bytes follow the end of the aws-chunked body")
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	c.done = true
	return io.EOF
}

// readTrailers reads the trailer lines up to the empty line that ends the
// body (or the end of the body), then checks them against the declared
// names and, in PayloadStreamingSignedTrailer, their signature.
func (c *chunkedReader) readTrailers() error {
	c.trailers = http.Header{}
	var sig []byte
	total := 0
	for {
		line, err := c.readTrailerLine()
		if errors.Is(err, io.EOF) && len(line) == 0 {
			break // some clients omit the last CRLF
		}
		if err != nil {
			return c.lineError(err, "a trailer", ErrMalformedTrailer)
		}
		if total += len(line); total > maxTrailerBytes {
			return ErrMalformedTrailer.with("the trailers exceed %d bytes", maxTrailerBytes)
		}
		if len(line) == 0 {
			break
		}
		if sig != nil {
			return ErrMalformedTrailer.with("trailer %q follows x-amz-trailer-signature", truncate(string(line)))
		}
		if sig, err = c.addTrailer(line); err != nil {
			return err
		}
	}
	return c.checkTrailers(sig)
}

// addTrailer parses the trailer line "name:value" and keeps it, or
// returns the signature of an x-amz-trailer-signature line.
func (c *chunkedReader) addTrailer(line []byte) ([]byte, error) {
	n, v, ok := bytes.Cut(line, []byte(":"))
	name, value := strings.ToLower(strings.TrimSpace(string(n))), strings.TrimSpace(string(v))
	switch {
	case !ok || name == "":
		return nil, ErrMalformedTrailer.with("trailer line %q is not name:value", truncate(string(line)))
	case name == "x-amz-trailer-signature" && c.mode == PayloadStreamingSignedTrailer:
		sig := decodeSignature([]byte(value))
		if sig == nil {
			return nil, ErrMalformedTrailer.with("x-amz-trailer-signature %q is not 64 hex digits", truncate(value))
		}
		return sig, nil
	case !slices.Contains(c.declared, name):
		return nil, ErrMalformedTrailer.with("trailer %q was not declared in x-amz-trailer", truncate(name))
	case c.hasTrailer(name):
		return nil, ErrMalformedTrailer.with("trailer %q appears twice", name)
	}
	c.trailers.Set(name, value)
	return nil, nil
}

// hasTrailer reports whether the trailer name has arrived.
func (c *chunkedReader) hasTrailer(name string) bool {
	_, ok := c.trailers[http.CanonicalHeaderKey(name)]
	return ok
}

// checkTrailers checks that every declared trailer arrived and, in
// PayloadStreamingSignedTrailer, the trailer signature over the sorted
// "name:value\n" lines, chained from the final chunk's signature.
func (c *chunkedReader) checkTrailers(sig []byte) error {
	for _, name := range c.declared {
		if !c.hasTrailer(name) {
			return ErrMalformedTrailer.with("trailer %q declared in x-amz-trailer never arrived", name)
		}
	}
	if c.mode != PayloadStreamingSignedTrailer {
		return nil
	}
	if sig == nil {
		return ErrMalformedTrailer.with("the trailers lack x-amz-trailer-signature")
	}
	names := slices.Clone(c.declared)
	slices.Sort(names)
	var canonical strings.Builder
	for _, name := range names {
		canonical.WriteString(name + ":" + c.trailers.Get(name) + "\n")
	}
	sum := sha256.Sum256([]byte(canonical.String()))
	sts := algorithmTrailer + "\n" + c.prefix + hex.EncodeToString(c.prevSig) + "\n" + hex.EncodeToString(sum[:])
	if !c.signs(sts, sig) {
		return ErrSignatureMismatch.with("x-amz-trailer-signature does not match the trailers")
	}
	return nil
}

// readLine reads one CRLF-terminated line of at most maxLineLength bytes
// and returns it without the CRLF. The line is valid until the next read.
func (c *chunkedReader) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull) || len(line) > maxLineLength:
		return nil, errLineTooLong
	case err != nil:
		return line, err
	case len(line) < 2 || line[len(line)-2] != '\r':
		return nil, errBareLF
	}
	return line[:len(line)-2], nil
}

// readTrailerLine is readLine for a trailer line, which may also end in a
// bare LF: minio-go ends its trailers "name:value\n" before the final
// CRLF.
func (c *chunkedReader) readTrailerLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull) || len(line) > maxLineLength:
		return nil, errLineTooLong
	case err != nil:
		return line, err
	}
	line = line[:len(line)-1]
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

var (
	errLineTooLong = errors.New("line too long")
	errBareLF      = errors.New("line ends in LF without CR")
)

// lineError turns a failure to read the line of what into the error to
// return; bad is the sentinel of a malformed line.
func (c *chunkedReader) lineError(err error, what string, bad *Error) error {
	switch {
	case errors.Is(err, io.EOF):
		return ErrIncompleteBody.with("the body ended in %s after %d decoded bytes", what, c.got)
	case errors.Is(err, errLineTooLong):
		return bad.with("%s is longer than %d bytes", what, maxLineLength)
	case errors.Is(err, errBareLF):
		return bad.with("%s ends in LF without CR", what)
	}
	return err
}
