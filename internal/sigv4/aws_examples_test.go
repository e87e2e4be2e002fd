package sigv4_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/sigv4"
)

// exampleTime is the request time of every AWS example.
var exampleTime = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)

// The header-authentication examples of "Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk" in the
// Amazon S3 API reference, with their published signatures.
func TestAWSHeaderExamples(t *testing.T) {
	const auth = "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
	for _, tc := range []struct {
		name, raw string
		body      string
	}{
		{name: "GET object with Range", raw: `GET /test.txt HTTP/1.1
Host: examplebucket.s3.amazonaws.com
` + auth + `SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41
Range: bytes=0-9
x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-amz-date: 20130524T000000Z

`},
		{name: "PUT object", body: "Welcome to Amazon S3.", raw: `PUT /test%24file.text HTTP/1.1
Host: examplebucket.s3.amazonaws.com
Date: Fri, 24 May 2013 00:00:00 GMT
` + auth + `SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd
x-amz-date: 20130524T000000Z
x-amz-storage-class: REDUCED_REDUNDANCY
x-amz-content-sha256: 44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072
Content-Length: 21

Welcome to Amazon S3.`},
		// The documentation's request line sends the key unencoded and
		// signs it encoded: the second canonical URI.
		{name: "PUT object, $ sent unencoded", body: "Welcome to Amazon S3.", raw: `PUT /test$file.text HTTP/1.1
Host: examplebucket.s3.amazonaws.com
Date: Fri, 24 May 2013 00:00:00 GMT
` + auth + `SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd
x-amz-date: 20130524T000000Z
x-amz-storage-class: REDUCED_REDUNDANCY
x-amz-content-sha256: 44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072
Content-Length: 21

Welcome to Amazon S3.`},
		{name: "GET bucket lifecycle", raw: `GET /?lifecycle HTTP/1.1
Host: examplebucket.s3.amazonaws.com
` + auth + `SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543
x-amz-date: 20130524T000000Z
x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

`},
		{name: "list objects", raw: `GET /?max-keys=2&prefix=J HTTP/1.1
Host: examplebucket.s3.amazonaws.com
` + auth + `SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7
x-amz-date: 20130524T000000Z
x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := readRequest(t, tc.raw)
			a, err := sigv4.Verify(context.Background(), r, exampleTime, exampleKeys)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if a.AccessKey != exampleAccessKey || a.Region != "us-east-1" || a.Date != "20130524" ||
				a.Service != "s3" || !a.Time.Equal(exampleTime) || a.Presigned || a.Payload != sigv4.PayloadSigned {
				t.Errorf("Auth = %+v", a)
			}
			got := readBody(t, a, r)
			if string(got) != tc.body {
				t.Errorf("body = %q, want %q", got, tc.body)
			}
		})
	}
}

// The presigned URL example of "Authenticating Requests: Using Query
// Parameters", verified, and reproduced by Presign.
func TestAWSPresignExample(t *testing.T) {
	const sig = "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
	const query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" +
		"&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=" + sig
	r := readRequest(t, "GET /test.txt?"+query+" HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\n\n")
	a, err := sigv4.Verify(context.Background(), r, exampleTime.Add(time.Hour), exampleKeys)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !a.Presigned || a.Payload != sigv4.PayloadUnsigned || !a.Expires.Equal(exampleTime.Add(24*time.Hour)) || a.Signature != sig {
		t.Errorf("Auth = %+v", a)
	}

	key := sigv4.DeriveKey(exampleSecret, "20130524", "us-east-1", "s3")
	u, err := sigv4.Presign("GET", "https://examplebucket.s3.amazonaws.com/test.txt", exampleAccessKey, key,
		"us-east-1", exampleTime, 24*time.Hour, nil)
	if err != nil {
		t.Fatalf("Presign: %v", err)
	}
	if want := "https://examplebucket.s3.amazonaws.com/test.txt?" + query; u != want {
		t.Errorf("Presign = %s\nwant      %s", u, want)
	}
}

// aChunks frames the 66560 bytes of 'a' of the AWS aws-chunked examples
// (a 64 KiB chunk, a 1 KiB chunk, the final chunk) with the given chunk
// signatures, then appends tail.
func aChunks(sigs [3]string, tail string) []byte {
	var b bytes.Buffer
	for i, n := range []int{65536, 1024, 0} {
		fmt.Fprintf(&b, "%x;chunk-signature=%s\r\n", n, sigs[i])
		if n > 0 {
			b.Write(bytes.Repeat([]byte("a"), n))
			b.WriteString("\r\n")
		}
	}
	b.WriteString(tail)
	return b.Bytes()
}

// The example of "Signature Calculations for the Authorization Header:
// Transferring Payload in Multiple Chunks": seed signature and the three
// chunk signatures.
func TestAWSChunkedExample(t *testing.T) {
	sigs := [3]string{
		"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
		"0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
		"b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
	}
	body := aChunks(sigs, "\r\n")
	if len(body) != 66824 {
		t.Fatalf("encoded body has %d bytes; the example's Content-Length is 66824", len(body))
	}
	raw := `PUT /examplebucket/chunkObject.txt HTTP/1.1
Host: s3.amazonaws.com
x-amz-date: 20130524T000000Z
x-amz-storage-class: REDUCED_REDUNDANCY
Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9
x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD
Content-Encoding: aws-chunked
x-amz-decoded-content-length: 66560
Content-Length: 66824

` + string(body)
	r := readRequest(t, raw)
	a, err := sigv4.Verify(context.Background(), r, exampleTime, exampleKeys)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if a.Payload != sigv4.PayloadStreamingSigned {
		t.Errorf("payload mode %v", a.Payload)
	}
	if got := readBody(t, a, r); !bytes.Equal(got, bytes.Repeat([]byte("a"), 66560)) {
		t.Errorf("decoded %d bytes, want 66560 bytes of 'a'", len(got))
	}
}

// The example of "Signature Calculations for the Authorization Header:
// Including Trailing Headers": seed, chunk and trailer signatures over a
// CRC32C trailer. (The published seed signature is reproduced without
// content-length among the signed headers.)
func TestAWSChunkedTrailerExample(t *testing.T) {
	sigs := [3]string{
		"b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
		"1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
		"2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
	}
	const trailer = "x-amz-checksum-crc32c:sOO8/Q==\r\n" +
		"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n"
	body := aChunks(sigs, trailer)
	raw := `PUT /examplebucket/chunkObject.txt HTTP/1.1
Host: s3.amazonaws.com
x-amz-date: 20130524T000000Z
x-amz-storage-class: REDUCED_REDUNDANCY
Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e
x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER
Content-Encoding: aws-chunked
x-amz-decoded-content-length: 66560
x-amz-trailer: x-amz-checksum-crc32c
Content-Length: ` + strconv.Itoa(len(body)) + `

` + string(body)
	r := readRequest(t, raw)
	a, err := sigv4.Verify(context.Background(), r, exampleTime, exampleKeys)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if a.Payload != sigv4.PayloadStreamingSignedTrailer {
		t.Errorf("payload mode %v", a.Payload)
	}
	br, err := a.Body(r)
	if err != nil {
		t.Fatalf("Body: %v", err)
	}
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	want := bytes.Repeat([]byte("a"), 66560)
	if !bytes.Equal(got, want) {
		t.Errorf("decoded %d bytes, want 66560 bytes of 'a'", len(got))
	}
	if v := br.Trailers().Get("x-amz-checksum-crc32c"); v != "sOO8/Q==" {
		t.Errorf("trailer x-amz-checksum-crc32c = %q; trailers %v", v, br.Trailers())
	}
	// The trailer is the CRC32C of the data, as the example says.
	crc := crc32.Checksum(want, crc32.MakeTable(crc32.Castagnoli))
	if v := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc)); v != "sOO8/Q==" {
		t.Errorf("CRC32C of the data is %s", v)
	}
}
