package s3gw

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/clipstore/clipstore/client"
)

// copyBufSize is how much of an object a GetObject reads at a time.
const copyBufSize = 1 << 20

// defaultContentType is what S3 answers for an object stored without one.
const defaultContentType = "binary/octet-stream"

// responseOverrides are the query parameters of a GetObject that set a
// response header (for presigned URLs).
var responseOverrides = map[string]string{
	"response-cache-control":       "Cache-Control",
	"response-content-disposition": "Content-Disposition",
	"response-content-encoding":    "Content-Encoding",
	"response-content-language":    "Content-Language",
	"response-content-type":        "Content-Type",
	"response-expires":             "Expires",
}

func (g *Gateway) headObject(w *response, req *request) error {
	part, gen, err := checkObjectQuery(req)
	if err != nil {
		return err
	}
	// The record with the part asked for only (the first for the whole
	// object): a clip of many parts is not read whole from meta.
	info, err := g.cfg.Client.StatPartAt(req.Context(), req.bucket, req.key, gen, max(part, 1))
	if gen != 0 && errors.Is(err, client.ErrNotFound) {
		return errNoSuchVersion
	}
	if err != nil {
		return err // a HEAD answer has no body: NoSuchKey and NoSuchBucket look alike
	}
	setVersion(w, gen)
	span, err := g.prepare(w, req, info, part)
	if err != nil || span == nil {
		return err
	}
	w.WriteHeader(span.status)
	return nil
}

func (g *Gateway) getObject(w *response, req *request) error {
	part, gen, err := checkObjectQuery(req)
	if err != nil {
		return err
	}
	r, err := g.cfg.Client.OpenPartAt(req.Context(), req.bucket, req.key, gen, max(part, 1))
	if gen != 0 && errors.Is(err, client.ErrNotFound) {
		return errNoSuchVersion
	}
	setVersion(w, gen)
	if errors.Is(err, client.ErrNotFound) {
		return g.notFoundError(req.Context(), req)
	}
	if err != nil {
		return err
	}
	defer r.Close()
	span, err := g.prepare(w, req, r.Info(), part)
	if err != nil || span == nil {
		return err
	}
	return g.stream(w, r, span)
}

// checkObjectQuery reads the parameters of GetObject and HeadObject:
// partNumber, the part to answer (0 for the whole object or a range), and
// versionId, the generation to read (0: the current one). A version is a
// generation, as decimal digits: the current one, or one a dataset keeps;
// "null" is the current one.
func checkObjectQuery(req *request) (part int, gen uint64, err error) {
	if v := req.query.Get("versionId"); req.query.Has("versionId") && v != "null" {
		if gen, err = strconv.ParseUint(v, 10, 64); err != nil || gen == 0 {
			return 0, 0, errInvalidArgument.with("Invalid version id specified")
		}
	}
	if !req.query.Has("partNumber") {
		return 0, gen, nil
	}
	n, err := parsePartNumber(req.query.Get("partNumber"))
	switch {
	case err != nil:
		return 0, 0, err
	case req.Header.Get("Range") != "":
		return 0, 0, errInvalidRequest.with("Cannot specify both Range header and partNumber query parameter")
	}
	return n, gen, nil
}

// setVersion names the version an answer carries, when one was asked for.
func setVersion(w *response, gen uint64) {
	if gen != 0 {
		w.Header().Set("x-amz-version-id", strconv.FormatUint(gen, 10))
	}
}

// span is the part of an object an answer carries.
type span struct {
	start, length int64
	status        int // 200, or 206 for a range
}

// prepare applies the request's preconditions and range (or part, if part
// is not 0) to the object and sets the answer's headers. It returns nil
// (and no error) when the answer is complete already: 304 Not Modified.
func (g *Gateway) prepare(w *response, req *request, info *client.ClipInfo, part int) (*span, error) {
	etag := objectETag(info.ETag, info.ClipID)
	mod := lastModified(info.Created)
	h := w.Header()
	switch evalConditions(req.Header, etag, mod, g.cfg.Now()) {
	case http.StatusPreconditionFailed:
		return nil, errPrecondition
	case http.StatusNotModified:
		h.Set("ETag", quoteETag(etag))
		h.Set("Last-Modified", mod.Format(http.TimeFormat))
		w.WriteHeader(http.StatusNotModified)
		return nil, nil
	}
	sp, sums, err := objectSpan(req, info, part)
	if errors.Is(err, errInvalidRange) {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", info.Size))
	}
	if err != nil {
		return nil, err
	}
	if n := partsCount(info); part != 0 && n > 0 {
		h.Set("x-amz-mp-parts-count", strconv.Itoa(n))
	}
	h.Set("ETag", quoteETag(etag))
	h.Set("Last-Modified", mod.Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", defaultContentType)
	if info.ContentType != "" {
		h.Set("Content-Type", info.ContentType)
	}
	h.Set("Content-Length", strconv.FormatInt(sp.length, 10))
	if sp.status == http.StatusPartialContent && sp.length > 0 {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", sp.start, sp.start+sp.length-1, info.Size))
	}
	for k, v := range info.Metadata {
		h["X-Amz-Meta-"+k] = []string{v} // as stored: lowercase, like S3
	}
	for k, v := range captureMetadata(info.Capture) {
		if _, ok := info.Metadata[k]; !ok { // a clip written through S3 answers the headers it was written with
			h["X-Amz-Meta-"+k] = []string{v}
		}
	}
	if strings.EqualFold(req.Header.Get("X-Amz-Checksum-Mode"), "ENABLED") {
		setChecksumHeaders(h, sums)
	}
	for param, header := range responseOverrides {
		if v := req.query.Get(param); v != "" {
			h.Set(header, v)
		}
	}
	return sp, nil
}

// objectSpan returns what of the object an answer carries, and the
// checksums of that: the range the request asks for (the object's
// checksums if it is the whole object), or part number part, 1-based in
// the object's order (that part's checksums). A part beyond the last is
// InvalidPartNumber; part 1 of an object not written in parts is the whole
// object. With a part, info holds that part only (client.StatPart,
// client.OpenPart), or none when the object has fewer.
func objectSpan(req *request, info *client.ClipInfo, part int) (*span, map[string]string, error) {
	if part == 0 {
		sp, err := parseRange(req.Header.Get("Range"), info.Size)
		switch {
		case err != nil:
			return nil, nil, err
		case sp.status == http.StatusOK:
			return sp, info.Checksums, nil
		}
		return sp, nil, nil
	}
	n := partsCount(info)
	switch {
	case n == 0 && part == 1:
		return &span{start: 0, length: info.Size, status: http.StatusOK}, info.Checksums, nil
	case part > n || len(info.Parts) != 1:
		return nil, nil, errInvalidPartNum
	}
	p := info.Parts[0]
	return &span{start: p.Offset, length: p.Size, status: http.StatusPartialContent}, p.Checksums, nil
}

// partsCount is the number of parts of an object written by a multipart
// upload, 0 for one written whole (one part, numbered 0). info holds its
// first part, or, with a part asked for, that part (none past the last).
func partsCount(info *client.ClipInfo) int {
	if info.PartCount == 1 && (len(info.Parts) == 0 || info.Parts[0].Number == 0) {
		return 0 // a part past the only one is refused either way
	}
	return info.PartCount
}

// setChecksumHeaders sets the checksum headers of an answer: a composite
// checksum (of a multipart object's parts) ends with "-N".
func setChecksumHeaders(h http.Header, sums map[string]string) {
	for alg, v := range sums {
		h.Set("x-amz-checksum-"+alg, v)
		typ := "FULL_OBJECT"
		if strings.Contains(v, "-") {
			typ = "COMPOSITE"
		}
		h.Set("x-amz-checksum-type", typ)
	}
}

// stream writes the span of the object as it reads it, copyBufSize bytes
// at a time. An error before the first byte is answered; after it, the
// answer is cut short (its Content-Length not reached, the server closes
// the connection) and the error only logged. A client that goes away
// cancels the request's context, which stops the reads.
func (g *Gateway) stream(w *response, r *client.Reader, sp *span) error {
	if sp.start == 0 && sp.length == r.Size() && sp.length > 0 {
		// The whole object: the clip's blocks go to the answer as they are
		// decoded, without a copy through a buffer, and its CRC is checked.
		hw := &headerOnWrite{w: w, status: sp.status}
		_, err := r.WriteTo(hw)
		switch {
		case err != nil && !hw.started:
			return err
		case err != nil && hw.failed:
			g.log.Debug("client went away", "op", "GetObject", "err", err)
			return nil
		case err != nil:
			return fmt.Errorf("read %d bytes into the answer, then: %w", hw.n, err)
		}
		return nil
	}
	if _, err := r.Seek(sp.start, io.SeekStart); err != nil {
		return err
	}
	bufp := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(bufp)
	buf := *bufp
	left := sp.length
	started := false
	for left > 0 {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), left)])
		if err != nil {
			if !started {
				return err
			}
			return fmt.Errorf("read %d bytes into the answer, then: %w", sp.length-left, err)
		}
		if !started {
			w.WriteHeader(sp.status)
			started = true
		}
		if _, err := w.Write(buf[:n]); err != nil {
			g.log.Debug("client went away", "op", "GetObject", "err", err)
			return nil
		}
		left -= int64(n)
	}
	if !started {
		w.WriteHeader(sp.status)
	}
	return nil
}

// headerOnWrite writes the answer's status line before its first byte, and
// tells a failure to write (the client went away) from a failure to read.
type headerOnWrite struct {
	w       *response
	status  int
	started bool
	failed  bool // a write failed
	n       int64
}

func (h *headerOnWrite) Write(p []byte) (int, error) {
	if !h.started {
		h.w.WriteHeader(h.status)
		h.started = true
	}
	n, err := h.w.Write(p)
	h.n += int64(n)
	if err != nil {
		h.failed = true
	}
	return n, err
}

// parseRange reads a Range header for an object of size bytes. S3 serves
// one range of bytes=first-last, first- or -suffix; it answers the whole
// object for an absent or malformed header and for several ranges, and
// InvalidRange when the range starts past the end.
func parseRange(v string, size int64) (*span, error) {
	whole := &span{start: 0, length: size, status: http.StatusOK}
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return whole, nil
	}
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return whole, nil
	}
	if a == "" { // -suffix: the last bytes
		n, err := strconv.ParseInt(b, 10, 64)
		switch {
		case err != nil || n < 0:
			return whole, nil
		case n == 0 || size == 0:
			return nil, errInvalidRange
		}
		n = min(n, size)
		return &span{start: size - n, length: n, status: http.StatusPartialContent}, nil
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return whole, nil
	}
	last := size - 1
	if b != "" {
		if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
			return whole, nil
		}
	}
	if first >= size {
		return nil, errInvalidRange
	}
	last = min(last, size-1)
	return &span{start: first, length: last - first + 1, status: http.StatusPartialContent}, nil
}

// evalConditions applies the preconditions of a GET or HEAD in S3's
// order, RFC 9110's: If-Match (else If-Unmodified-Since) fails with 412;
// then If-None-Match (else If-Modified-Since) with 304. It returns 0 when
// the object is to be sent.
func evalConditions(h http.Header, etag string, mod, now time.Time) int {
	if v := h.Get("If-Match"); v != "" {
		if !etagMatches(v, etag) {
			return http.StatusPreconditionFailed
		}
	} else if t, err := http.ParseTime(h.Get("If-Unmodified-Since")); err == nil && mod.After(t) {
		return http.StatusPreconditionFailed
	}
	if v := h.Get("If-None-Match"); v != "" {
		if etagMatches(v, etag) {
			return http.StatusNotModified
		}
	} else if t, err := http.ParseTime(h.Get("If-Modified-Since")); err == nil && !t.After(now) && !mod.After(t) {
		return http.StatusNotModified
	}
	return 0
}

// etagMatches reports whether the list of entity tags in a header names
// etag (or is "*"); weak tags compare by their value.
func etagMatches(list, etag string) bool {
	for t := range strings.SplitSeq(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.Trim(strings.TrimPrefix(t, "W/"), `"`) == etag {
			return true
		}
	}
	return false
}

// objectETag is the ETag of a record: the one its writer stored (the hex
// MD5 for a PutObject), or, for a clip written without one, its clip id
// with "-1", which S3 clients know as an ETag that is no MD5.
func objectETag(stored, clipID string) string {
	if stored = strings.Trim(stored, `"`); stored != "" {
		return stored
	}
	return clipID + "-1"
}

func quoteETag(etag string) string { return `"` + etag + `"` }
