package sigv4_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/clipstore/clipstore/internal/sigv4"
)

// The x-amz-content-sha256 values of the streaming modes.
const (
	streamingSigned          = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	streamingSignedTrailer   = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	streamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
)

// streamingRequest is a PUT of an aws-chunked body in mode, its seed
// request signed by the SDK with x-amz-decoded-content-length decoded and
// x-amz-trailer trailer (if any), and the Auth Verify gives it. The caller
// sets the body.
func streamingRequest(t testing.TB, mode string, decoded int, trailer string) (*http.Request, *sigv4.Auth) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, "https://s3.test/bucket/clip.mp4", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(decoded))
	if trailer != "" {
		req.Header.Set("X-Amz-Trailer", trailer)
	}
	req.Header.Set("X-Amz-Content-Sha256", mode)
	err = v4.NewSigner().SignHTTP(context.Background(), testCreds, req, mode, "s3", testRegion, signTime,
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err != nil {
		t.Fatalf("SignHTTP: %v", err)
	}
	a, err := sigv4.Verify(context.Background(), req, serverTime, testKeys)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return req, a
}

// encoder writes aws-chunked bodies, signing them as a client would: each
// chunk signature chained from the previous one, starting at the seed.
type encoder struct {
	key             []byte
	amzDate, scope  string
	prev            string
	signed, trailer bool // chunks signed; trailer signed
}

func newEncoder(a *sigv4.Auth) *encoder {
	return &encoder{
		key:     sigv4.DeriveKey(testSecret, a.Date, a.Region, a.Service),
		amzDate: a.Time.Format("20060102T150405Z"),
		scope:   a.Date + "/" + a.Region + "/" + a.Service + "/aws4_request",
		prev:    a.Signature,
		signed:  a.Payload != sigv4.PayloadStreamingUnsignedTrailer,
		trailer: a.Payload == sigv4.PayloadStreamingSignedTrailer,
	}
}

func (e *encoder) sign(algorithm, hash string) string {
	m := hmac.New(sha256.New, e.key)
	fmt.Fprintf(m, "%s\n%s\n%s\n%s\n", algorithm, e.amzDate, e.scope, e.prev)
	m.Write([]byte(hash))
	e.prev = hex.EncodeToString(m.Sum(nil))
	return e.prev
}

func (e *encoder) chunkSig(data []byte) string {
	sum := sha256.Sum256(data)
	return e.sign("AWS4-HMAC-SHA256-PAYLOAD", sha256Hex("")+"\n"+hex.EncodeToString(sum[:]))
}

// chunk writes one chunk (the final one if data is empty).
func (e *encoder) chunk(b *bytes.Buffer, data []byte) {
	fmt.Fprintf(b, "%x", len(data))
	if e.signed {
		b.WriteString(";chunk-signature=" + e.chunkSig(data))
	}
	b.WriteString("\r\n")
	if len(data) > 0 {
		b.Write(data)
		b.WriteString("\r\n")
	}
}

// encode writes data in chunks of size, the final chunk, the trailers
// (name, value pairs) and, for a signed trailer, their signature.
func (e *encoder) encode(data []byte, size int, trailers ...string) []byte {
	var b bytes.Buffer
	for c := range slices.Chunk(data, size) {
		e.chunk(&b, c)
	}
	e.chunk(&b, nil)
	var canonical strings.Builder
	for i := 0; i+1 < len(trailers); i += 2 {
		b.WriteString(trailers[i] + ":" + trailers[i+1] + "\r\n")
		canonical.WriteString(trailers[i] + ":" + trailers[i+1] + "\n")
	}
	if e.trailer {
		b.WriteString("x-amz-trailer-signature:" + e.sign("AWS4-HMAC-SHA256-TRAILER", sha256Hex(canonical.String())) + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// clip is the test object: 100 KiB and a bit, so that chunks of 64 KiB
// leave a short last one.
var clip = bytes.Repeat([]byte("vehicle clip \x00\xff\r\n"), 100<<10/16+7)

func decode(t *testing.T, r *http.Request, a *sigv4.Auth) ([]byte, *sigv4.Reader, error) {
	t.Helper()
	br, err := a.Body(r)
	if err != nil {
		return nil, nil, err
	}
	got, err := io.ReadAll(br)
	return got, br, err
}

// Streams in the three modes decode to the object, with their trailers,
// whatever the chunk size and however they are read.
func TestChunkedDecodes(t *testing.T) {
	const crc = "x-amz-checksum-crc32c"
	for _, tc := range []struct {
		mode     string
		trailer  string
		trailers []string
	}{
		{mode: streamingSigned},
		{mode: streamingSignedTrailer, trailer: crc, trailers: []string{crc, "AAAAAA=="}},
		{mode: streamingSignedTrailer},
		{mode: streamingSignedTrailer, trailer: "x-amz-checksum-crc32c, X-Amz-Checksum-CRC32C", trailers: []string{crc, "AAAAAA=="}},
		{mode: streamingSignedTrailer, trailer: "x-amz-checksum-sha256, x-amz-checksum-crc64nvme",
			trailers: []string{"x-amz-checksum-crc64nvme", "AAAAAAAAAAA=", "x-amz-checksum-sha256", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}},
		{mode: streamingUnsignedTrailer, trailer: crc, trailers: []string{crc, "AAAAAA=="}},
		{mode: streamingUnsignedTrailer},
	} {
		for _, size := range []int{1, 8 << 10, 64 << 10, len(clip)} {
			name := fmt.Sprintf("%s %s/%d", tc.mode, tc.trailer, size)
			object := clip
			if size == 1 {
				object = clip[:1000]
			}
			t.Run(name, func(t *testing.T) {
				r, a := streamingRequest(t, tc.mode, len(object), tc.trailer)
				body := newEncoder(a).encode(object, size, tc.trailers...)
				r.Body = io.NopCloser(iotest.OneByteReader(bytes.NewReader(body)))
				br, err := a.Body(r)
				if err != nil {
					t.Fatalf("Body: %v", err)
				}
				if br.Size() != int64(len(object)) {
					t.Errorf("Size = %d, want %d", br.Size(), len(object))
				}
				if err := iotest.TestReader(br, object); err != nil {
					t.Fatal(err)
				}
				want := http.Header{}
				for i := 0; i+1 < len(tc.trailers); i += 2 {
					want.Set(tc.trailers[i], tc.trailers[i+1])
				}
				if got := br.Trailers(); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("Trailers = %v, want %v", got, want)
				}
				if n := len(br.DeclaredTrailers()); n != len(tc.trailers)/2 {
					t.Errorf("DeclaredTrailers = %v", br.DeclaredTrailers())
				}
			})
		}
	}
}

// An empty object is a final chunk alone.
func TestChunkedEmpty(t *testing.T) {
	for _, mode := range []string{streamingSigned, streamingSignedTrailer, streamingUnsignedTrailer} {
		r, a := streamingRequest(t, mode, 0, "")
		r.Body = io.NopCloser(bytes.NewReader(newEncoder(a).encode(nil, 1)))
		if got, _, err := decode(t, r, a); err != nil || len(got) != 0 {
			t.Errorf("%s: decoded %q, %v", mode, got, err)
		}
	}
}

// corruption is a change to a good encoded stream and the error it causes.
type corruption struct {
	name    string
	modes   []string // the modes it applies to; all when empty
	decoded int      // x-amz-decoded-content-length if not len(clip)
	trailer string   // x-amz-trailer if not x-amz-checksum-crc32
	change  func(b []byte) []byte
	want    *sigv4.Error
}

// flip flips a byte of the data of chunk 1 or 2 of a stream of 64 KiB
// chunks.
func flip(b []byte, chunk int) []byte {
	i := bytes.Index(b, []byte("\r\n")) + 2 // the first chunk's data
	if chunk == 2 {
		i += 64<<10 + 2
		i += bytes.Index(b[i:], []byte("\r\n")) + 2
	}
	b[i+10] ^= 1
	return b
}

// flipHex changes the hex digit right after the first occurrence of
// prefix in b.
func flipHex(b []byte, prefix string) []byte {
	i := bytes.Index(b, []byte(prefix)) + len(prefix)
	b[i] = "10"[min(int(b[i]-'0'), 1)]
	return b
}

// replaceNth replaces the nth (from 0) occurrence of old in b.
func replaceNth(b []byte, old, new string, n int) []byte {
	at := 0
	for range n {
		at += bytes.Index(b[at:], []byte(old)) + len(old)
	}
	i := bytes.Index(b[at:], []byte(old)) + at
	return slices.Concat(b[:i], []byte(new), b[i+len(old):])
}

var corruptions = []corruption{
	{name: "flipped data byte", modes: []string{streamingSigned, streamingSignedTrailer},
		change: func(b []byte) []byte { return flip(b, 2) }, want: sigv4.ErrSignatureMismatch},
	{name: "wrong chunk signature", modes: []string{streamingSigned, streamingSignedTrailer},
		change: func(b []byte) []byte { return flipHex(b, "chunk-signature=") }, want: sigv4.ErrSignatureMismatch},
	{name: "chunk signatures swapped", modes: []string{streamingSigned},
		change: func(b []byte) []byte {
			i := bytes.Index(b, []byte("chunk-signature=")) + len("chunk-signature=")
			j := bytes.LastIndex(b, []byte("chunk-signature=")) + len("chunk-signature=")
			s := slices.Clone(b[i : i+64])
			copy(b[i:], b[j:j+64])
			copy(b[j:], s)
			return b
		},
		want: sigv4.ErrSignatureMismatch},
	{name: "truncated in data", change: func(b []byte) []byte { return b[:len(b)/2] }, want: sigv4.ErrIncompleteBody},
	{name: "truncated in chunk header", change: func(b []byte) []byte {
		return b[:bytes.Index(b, []byte("\r\n"))+2+64<<10+2+3]
	}, want: sigv4.ErrIncompleteBody},
	{name: "missing final chunk", change: func(b []byte) []byte {
		return b[:bytes.LastIndex(b, []byte("\r\n0"))+2]
	}, want: sigv4.ErrIncompleteBody},
	{name: "declared trailer missing", modes: []string{streamingSignedTrailer, streamingUnsignedTrailer},
		trailer: "x-amz-checksum-crc32,x-amz-checksum-sha1", want: sigv4.ErrMalformedTrailer},
	{name: "wrong trailer signature", modes: []string{streamingSignedTrailer}, change: func(b []byte) []byte {
		return flipHex(b, "x-amz-trailer-signature:")
	}, want: sigv4.ErrSignatureMismatch},
	{name: "trailer value changed", modes: []string{streamingSignedTrailer}, change: func(b []byte) []byte {
		return replaceNth(b, "NSRBwg==", "NSRBwh==", 0)
	}, want: sigv4.ErrSignatureMismatch},
	{name: "trailer signature missing", modes: []string{streamingSignedTrailer}, change: func(b []byte) []byte {
		i := bytes.Index(b, []byte("x-amz-trailer-signature:"))
		return slices.Concat(b[:i], []byte("\r\n"))
	}, want: sigv4.ErrMalformedTrailer},
	{name: "undeclared trailer", modes: []string{streamingSignedTrailer, streamingUnsignedTrailer}, change: func(b []byte) []byte {
		return replaceNth(b, "x-amz-checksum-crc32:", "x-amz-meta-x:1\r\nx-amz-checksum-crc32:", 0)
	}, want: sigv4.ErrMalformedTrailer},
	{name: "trailer repeated", modes: []string{streamingUnsignedTrailer}, change: func(b []byte) []byte {
		return replaceNth(b, "x-amz-checksum-crc32:", "x-amz-checksum-crc32:a\r\nx-amz-checksum-crc32:", 0)
	}, want: sigv4.ErrMalformedTrailer},
	{name: "trailer after signature", modes: []string{streamingSignedTrailer}, change: func(b []byte) []byte {
		return slices.Concat(b[:len(b)-2], []byte("x-amz-checksum-crc32:NSRBwg==\r\n\r\n"))
	}, want: sigv4.ErrMalformedTrailer},
	{name: "trailer line without colon", modes: []string{streamingUnsignedTrailer}, change: func(b []byte) []byte {
		return replaceNth(b, "x-amz-checksum-crc32:", "x-amz-checksum-crc32=", 0)
	}, want: sigv4.ErrMalformedTrailer},
	{name: "trailers too large", modes: []string{streamingUnsignedTrailer},
		trailer: "x-amz-meta-a,x-amz-meta-b,x-amz-meta-c,x-amz-meta-d,x-amz-meta-e,x-amz-checksum-crc32",
		change: func(b []byte) []byte {
			var lines string
			for _, c := range "abcde" {
				lines += "x-amz-meta-" + string(c) + ":" + strings.Repeat("A", 3900) + "\r\n"
			}
			return replaceNth(b, "x-amz-checksum-crc32:", lines+"x-amz-checksum-crc32:", 0)
		}, want: sigv4.ErrMalformedTrailer},
	{name: "trailer in a mode without trailers", modes: []string{streamingSigned}, trailer: "-", change: func(b []byte) []byte {
		return slices.Concat(b[:len(b)-2], []byte("x-amz-checksum-crc32:NSRBwg==\r\n\r\n"))
	}, want: sigv4.ErrMalformedTrailer},
	{name: "decoded length larger", decoded: len(clip) + 1, want: sigv4.ErrIncompleteBody},
	{name: "decoded length smaller", decoded: len(clip) - 1, want: sigv4.ErrIncompleteBody},
	{name: "chunk header too long", change: func(b []byte) []byte {
		return slices.Concat([]byte(strings.Repeat("0", 5000)), b)
	}, want: sigv4.ErrMalformedChunk},
	{name: "chunk header without LF", change: func(b []byte) []byte {
		return bytes.Repeat([]byte("f"), 100<<10)
	}, want: sigv4.ErrMalformedChunk},
	{name: "garbage hex size", change: func(b []byte) []byte { return replaceNth(b, "10000", "1g000", 0) },
		want: sigv4.ErrMalformedChunk},
	{name: "size with 0x prefix", change: func(b []byte) []byte { return replaceNth(b, "10000", "0x10000", 0) },
		want: sigv4.ErrMalformedChunk},
	{name: "size of 17 hex digits", change: func(b []byte) []byte { return replaceNth(b, "10000", "00000000000010000", 0) },
		want: sigv4.ErrMalformedChunk},
	{name: "size too small", change: func(b []byte) []byte { return replaceNth(b, "10000", "fff0", 0) },
		want: sigv4.ErrMalformedChunk},
	{name: "size too large", change: func(b []byte) []byte { return replaceNth(b, "10000", "10010", 0) },
		want: sigv4.ErrMalformedChunk},
	{name: "signed chunk over MaxChunkSize", modes: []string{streamingSigned}, decoded: 1 << 30,
		change: func(b []byte) []byte { return replaceNth(b, "10000", "1000001", 0) },
		want:   sigv4.ErrMalformedChunk},
	{name: "chunk beyond decoded length", modes: []string{streamingUnsignedTrailer},
		change: func(b []byte) []byte { return replaceNth(b, "10000\r\n", "fffffffffffffff\r\n", 0) },
		want:   sigv4.ErrIncompleteBody},
	{name: "missing chunk signature", modes: []string{streamingSigned, streamingSignedTrailer},
		change: func(b []byte) []byte { return replaceNth(b, ";chunk-signature=", ";x=", 1) },
		want:   sigv4.ErrMalformedChunk},
	{name: "short chunk signature", modes: []string{streamingSigned},
		change: func(b []byte) []byte { return replaceNth(b, ";chunk-signature=", ";chunk-signature=a\r\n", 0) },
		want:   sigv4.ErrMalformedChunk},
	{name: "bare LF", change: func(b []byte) []byte {
		i := bytes.Index(b, []byte("\r\n"))
		return slices.Concat(b[:i], b[i+1:])
	}, want: sigv4.ErrMalformedChunk},
	{name: "bytes after the end", change: func(b []byte) []byte { return append(b, 'x') }, want: sigv4.ErrMalformedChunk},
}

// Each corruption of a good stream fails with the error that names it,
// before io.EOF.
func TestChunkedCorruptions(t *testing.T) {
	for _, mode := range []string{streamingSigned, streamingSignedTrailer, streamingUnsignedTrailer} {
		for _, c := range corruptions {
			if len(c.modes) > 0 && !slices.Contains(c.modes, mode) {
				continue
			}
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				trailer, trailers := "x-amz-checksum-crc32", []string{"x-amz-checksum-crc32", "NSRBwg=="}
				if mode == streamingSigned {
					trailer, trailers = "", nil
				}
				if c.trailer != "" {
					trailer = strings.Trim(c.trailer, "-")
				}
				decoded := cmp.Or(c.decoded, len(clip))
				r, a := streamingRequest(t, mode, decoded, trailer)
				body := newEncoder(a).encode(clip, 64<<10, trailers...)
				if c.change != nil {
					body = c.change(body)
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
				got, _, err := decode(t, r, a)
				t.Log(err)
				wantError(t, err, c.want)
				if len(got) > len(clip) {
					t.Errorf("decoded %d bytes of a %d-byte object", len(got), len(clip))
				}
			})
		}
	}
}

// In the unsigned mode nothing covers the data: a flipped byte passes
// through, for the trailing checksum to catch.
func TestChunkedUnsignedPassesData(t *testing.T) {
	r, a := streamingRequest(t, streamingUnsignedTrailer, len(clip), "")
	body := flip(newEncoder(a).encode(clip, 64<<10), 2)
	r.Body = io.NopCloser(bytes.NewReader(body))
	got, _, err := decode(t, r, a)
	if err != nil || len(got) != len(clip) || bytes.Equal(got, clip) {
		t.Fatalf("decoded %d bytes (equal: %v), %v", len(got), bytes.Equal(got, clip), err)
	}
}

// Body refuses what it cannot decode before reading a byte.
func TestChunkedBodyRefuses(t *testing.T) {
	r, a := streamingRequest(t, streamingSigned, 10, "")
	r.Header.Del("X-Amz-Decoded-Content-Length")
	_, err := a.Body(r)
	wantError(t, err, sigv4.ErrMissingDecodedLength)

	r.Header.Set("X-Amz-Decoded-Content-Length", "-1")
	_, err = a.Body(r)
	wantError(t, err, sigv4.ErrMissingDecodedLength)

	r, a = streamingRequest(t, streamingSigned, 10, "x-amz-checksum-crc32")
	_, err = a.Body(r)
	wantError(t, err, sigv4.ErrMalformedTrailer)

	var many []string
	for i := range 17 {
		many = append(many, fmt.Sprintf("x-amz-meta-%d", i))
	}
	r, a = streamingRequest(t, streamingUnsignedTrailer, 10, strings.Join(many, ","))
	_, err = a.Body(r)
	wantError(t, err, sigv4.ErrMalformedTrailer)
}

// The signature error of a chunk comes with the Read that ends the chunk:
// bytes of a later chunk are never handed out.
func TestChunkedErrorAtChunkEnd(t *testing.T) {
	r, a := streamingRequest(t, streamingSigned, len(clip), "")
	body := flip(newEncoder(a).encode(clip, 64<<10), 1)
	r.Body = io.NopCloser(bytes.NewReader(body))
	br, err := a.Body(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(br)
	wantError(t, err, sigv4.ErrSignatureMismatch)
	if len(got) != 64<<10 {
		t.Errorf("handed out %d bytes before the error; want the first chunk's %d", len(got), 64<<10)
	}
	if n, err2 := br.Read(make([]byte, 10)); n != 0 || !errors.Is(err2, sigv4.ErrSignatureMismatch) {
		t.Errorf("Read after the error = %d, %v; want the same error", n, err2)
	}
	if br.Trailers() != nil {
		t.Errorf("Trailers after a failure = %v", br.Trailers())
	}
}

// Decoding a large stream allocates a bounded amount, independent of the
// body's size, and so does a hostile endless header line.
func TestChunkedMemoryBounded(t *testing.T) {
	const chunk, chunks = 1 << 20, 64
	data := bytes.Repeat([]byte{'v'}, chunk)
	r, a := streamingRequest(t, streamingSigned, chunk*chunks, "")
	e := newEncoder(a)
	var parts []io.Reader
	for range chunks {
		parts = append(parts, strings.NewReader(fmt.Sprintf("%x;chunk-signature=%s\r\n", chunk, e.chunkSig(data))),
			bytes.NewReader(data), strings.NewReader("\r\n"))
	}
	parts = append(parts, strings.NewReader("0;chunk-signature="+e.chunkSig(nil)+"\r\n\r\n"))
	r.Body = io.NopCloser(io.MultiReader(parts...))
	allocated := allocs(t, func() {
		br, err := a.Body(r)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, br); err != nil || n != chunk*chunks {
			t.Fatalf("decoded %d bytes, %v", n, err)
		}
	})
	if allocated > 1<<20 {
		t.Errorf("decoding %d MiB allocated %d bytes", chunk*chunks>>20, allocated)
	}

	r, a = streamingRequest(t, streamingUnsignedTrailer, 1<<40, "")
	r.Body = io.NopCloser(io.LimitReader(infinite('f'), 1<<30))
	allocated = allocs(t, func() {
		_, _, err := decode(t, r, a)
		wantError(t, err, sigv4.ErrMalformedChunk)
	})
	if allocated > 1<<20 {
		t.Errorf("an endless chunk header allocated %d bytes", allocated)
	}
}

// allocs is the number of bytes f allocates.
func allocs(t *testing.T, f func()) uint64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// infinite is an endless stream of one byte.
type infinite byte

func (b infinite) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// FuzzChunkedReader decodes arbitrary bodies in each streaming mode: the
// decoder must not panic, must fail only with an *Error, must never hand
// out more bytes than x-amz-decoded-content-length or than it was given,
// and must hand out exactly the declared length when it reports success.
// Its seeds are valid streams, checked to decode.
func FuzzChunkedReader(f *testing.F) {
	for i, mode := range fuzzModes {
		_, a := streamingRequest(f, mode, 40, fuzzTrailer(mode))
		var trailers []string
		if mode != streamingSigned {
			trailers = []string{"x-amz-checksum-crc32", "NSRBwg=="}
		}
		body := newEncoder(a).encode(clip[:40], 16, trailers...)
		if n, err := fuzzDecode(f, uint8(i), 40, body); n != 40 || err != nil {
			f.Fatalf("seed in %s decodes %d bytes, %v", mode, n, err)
		}
		f.Add(uint8(i), uint16(40), body)
	}
	f.Add(uint8(2), uint16(5), []byte("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, mode uint8, decoded uint16, body []byte) {
		n, err := fuzzDecode(t, mode, decoded, body)
		var e *sigv4.Error
		switch {
		case n > int64(decoded) || n > int64(len(body)):
			t.Fatalf("decoded %d bytes from %d with x-amz-decoded-content-length %d", n, len(body), decoded)
		case err == nil && n != int64(decoded):
			t.Fatalf("success after %d bytes; %d declared", n, decoded)
		case err != nil && !errors.As(err, &e):
			t.Fatalf("error %v is not an *Error", err)
		}
	})
}

var fuzzModes = []string{streamingSigned, streamingSignedTrailer, streamingUnsignedTrailer}

// fuzzTrailer is what x-amz-trailer declares in the fuzzed requests.
func fuzzTrailer(mode string) string {
	if mode == streamingSigned {
		return ""
	}
	return "x-amz-checksum-crc32"
}

// fuzzDecode decodes body in the streaming mode numbered mode.
func fuzzDecode(t testing.TB, mode uint8, decoded uint16, body []byte) (int64, error) {
	m := fuzzModes[int(mode)%len(fuzzModes)]
	r, a := streamingRequest(t, m, int(decoded), fuzzTrailer(m))
	r.Body = io.NopCloser(bytes.NewReader(body))
	br, err := a.Body(r)
	if err != nil {
		t.Fatalf("Body: %v", err)
	}
	return io.Copy(io.Discard, br)
}

// A trailer line may end in a bare LF, as minio-go writes them
// ("name:value\n" before the final CRLF).
func TestChunkedTrailerBareLF(t *testing.T) {
	const crc = "x-amz-checksum-crc32c"
	r, a := streamingRequest(t, streamingUnsignedTrailer, len(clip), crc)
	body := newEncoder(a).encode(clip, 64<<10, crc, "AAAAAA==")
	i := bytes.LastIndex(body, []byte(crc+":AAAAAA==\r\n"))
	if i < 0 {
		t.Fatalf("no trailer line in the encoded body")
	}
	body = append(body[:i:i], []byte(crc+":AAAAAA==\n\r\n")...)
	r.Body = io.NopCloser(bytes.NewReader(body))
	got, br, err := decode(t, r, a)
	if err != nil || !bytes.Equal(got, clip) || br.Trailers().Get(crc) != "AAAAAA==" {
		t.Fatalf("decoded %d bytes, trailers %v, %v", len(got), br.Trailers(), err)
	}
}
