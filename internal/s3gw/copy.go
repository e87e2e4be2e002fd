package s3gw

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/clipstore/clipstore/client"
)

// Server-side copies (CopyObject, UploadPartCopy). A shard belongs to one
// record only, so a copy is a new write: the source, pinned at the
// generation it was opened at, is read by the gateway and streamed into a
// Put (or PutPart) of the destination through a digester, as a PutObject's
// body is. Nothing of it passes through the caller.

// selfCopyMessage is S3's message for a copy of an object onto itself
// that changes nothing.
const selfCopyMessage = "This copy request is illegal because it is trying to copy an object to itself without changing " +
	"the object's metadata, storage class, website redirect location or encryption attributes."

// copySource is the object an x-amz-copy-source header names.
type copySource struct {
	bucket, key string
	version     string // the versionId asked for; "" if none
}

// parseCopySource reads x-amz-copy-source: "bucket/key" or "/bucket/key",
// URL-encoded, optionally followed by "?versionId=<id>".
func parseCopySource(v string) (copySource, error) {
	var s copySource
	bad := errInvalidArgument.with("Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
	path, query, _ := strings.Cut(v, "?")
	path, err := url.PathUnescape(path)
	if err != nil {
		return s, bad
	}
	s.bucket, s.key, _ = strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if s.bucket == "" || s.key == "" {
		return s, bad
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return s, bad
	}
	if q.Has("versionId") {
		if s.version = q.Get("versionId"); s.version == "" {
			return s, errInvalidArgument.with("Version id cannot be the empty string")
		}
	}
	return s, nil
}

// checkVersion accepts the version the copy asks for if it is the
// generation read (the generation is the version id), or "null", the
// version of an object in a bucket without versioning: the current one.
func (s copySource) checkVersion(gen uint64) error {
	switch {
	case s.version == "", s.version == "null", s.version == strconv.FormatUint(gen, 10):
		return nil
	}
	if _, err := strconv.ParseUint(s.version, 10, 64); err != nil {
		return errInvalidArgument.with("Invalid version id specified")
	}
	return errNoSuchVersion.about(s.bucket, s.key)
}

// copyConditions are the x-amz-copy-source-if-* headers of a copy as the
// If-* headers evalConditions reads. S3 applies them as a GET's
// conditions (If-Match before If-Unmodified-Since, If-None-Match before
// If-Modified-Since), except that every failure is 412.
func copyConditions(h http.Header) http.Header {
	c := http.Header{}
	for _, name := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if v := h.Get("X-Amz-Copy-Source-" + name); v != "" {
			c.Set(name, v)
		}
	}
	return c
}

// openSource opens the copy's source and pins its generation, which must
// be the version asked for and meet the source conditions.
func (g *Gateway) openSource(req *request, src copySource) (*client.Reader, error) {
	ctx := req.Context()
	r, err := g.cfg.Client.Open(ctx, src.bucket, src.key)
	if errors.Is(err, client.ErrNotFound) {
		switch berr := g.checkBucket(ctx, src.bucket); {
		case errors.Is(berr, errNoSuchBucket):
			return nil, errNoSuchBucket.about(src.bucket, "")
		case berr != nil:
			return nil, berr
		}
		return nil, errNoSuchKey.about(src.bucket, src.key)
	}
	if err != nil {
		return nil, err
	}
	info := r.Info()
	if err := src.checkVersion(info.Generation); err != nil {
		r.Close()
		return nil, err
	}
	etag := objectETag(info.ETag, info.ClipID)
	if evalConditions(copyConditions(req.Header), etag, lastModified(info.Created), g.cfg.Now()) != 0 {
		r.Close()
		return nil, errPrecondition
	}
	return r, nil
}

// checkNoBody refuses a copy request that has a body: its bytes come
// from the source. An empty body is still read, so that a signed payload
// is verified.
func checkNoBody(req *request) error {
	_, body, err := req.body()
	if err != nil {
		return err
	}
	switch _, err := io.ReadFull(body, make([]byte, 1)); {
	case err == nil:
		return errInvalidRequest.with("A copy request has no body; its bytes come from x-amz-copy-source.")
	case err != io.EOF:
		return bodyError(err)
	}
	return nil
}

// copyStream is a span of a copy's source on its way to the destination:
// client.Put or PutPart reads it through a digester that hashes beside the
// write, and finish, before the commit, takes the digests and checks that
// the source is still the generation read.
type copyStream struct {
	ctx    context.Context
	c      *client.Client
	src    copySource
	pinned *client.ClipInfo
	span   io.Reader // the span of the pinned generation
	n      int64     // its length
	err    error     // why the source could not be read; nil if it could
	d      *digester
	want   *digests
	etag   string            // set by finish: the hex MD5
	sums   map[string]string // set by finish: the checksum to store, if any
}

// newCopyStream starts the hashing of the n bytes of r from off; stop ends
// it.
func (g *Gateway) newCopyStream(ctx context.Context, src copySource, r *client.Reader, off, n int64, want *digests) (*copyStream, error) {
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	s := &copyStream{ctx: ctx, c: g.cfg.Client, src: src, pinned: r.Info(), span: io.LimitReader(r, n), n: n, want: want}
	var in io.Reader = sourceReader{s}
	if g.copySourceHook != nil {
		in = g.copySourceHook(in)
	}
	s.d = newDigester(in, want.hashes())
	return s, nil
}

// sourceReader reads the copy's span, keeping the source's read error:
// the writer sees only that the read failed (never an io.ErrUnexpectedEOF
// that the encoder would take for the end of the clip).
type sourceReader struct{ s *copyStream }

var errSourceRead = errors.New("s3gw: the copy source could not be read")

func (r sourceReader) Read(p []byte) (int, error) {
	n, err := r.s.span.Read(p)
	if err != nil && err != io.EOF {
		r.s.err = err
		return n, errSourceRead
	}
	return n, err
}

// stop ends the hashing; deferred by the handler.
func (s *copyStream) stop() { s.d.stop() }

// finish is the Finish of the copy's write: it takes the digests, and
// fails the write (nothing becomes visible) if the source is no longer
// the generation read, whatever the reads found: a copy is of one
// generation, current while it was read.
func (s *copyStream) finish() (*client.PutFinish, error) {
	sums, err := s.d.sums()
	if err != nil {
		return nil, err
	}
	if s.d.n != s.n {
		return nil, fmt.Errorf("copy of %s/%s: read %d bytes of the source, want %d", s.src.bucket, s.src.key, s.d.n, s.n)
	}
	etag, checksums, err := s.want.verified(sums, nil)
	if err != nil {
		return nil, err
	}
	now, err := s.c.Stat(s.ctx, s.src.bucket, s.src.key)
	switch {
	case errors.Is(err, client.ErrNotFound):
		s.err = fmt.Errorf("%w: the copy source %s/%s was deleted during the copy", client.ErrClipChanged, s.src.bucket, s.src.key)
		return nil, s.err
	case err != nil:
		return nil, err
	case now.Generation != s.pinned.Generation || now.ClipID != s.pinned.ClipID:
		s.err = fmt.Errorf("%w: the copy source %s/%s is at generation %d, the copy read %d", client.ErrClipChanged,
			s.src.bucket, s.src.key, now.Generation, s.pinned.Generation)
		return nil, s.err
	}
	s.etag, s.sums = etag, checksums
	return &client.PutFinish{ETag: etag, Checksums: checksums}, nil
}

// failed maps the error of the copy's write: the source's, if reading it
// failed (a source replaced or deleted meanwhile is ServiceUnavailable,
// as a GetObject's: a retry copies the new one), else writeErr's mapping.
func (s *copyStream) failed(err error, writeErr func(error) error) error {
	switch {
	case errors.Is(s.err, client.ErrClipChanged):
		return fmt.Errorf("%w (%w)", errUnavailable.with("The copy source was replaced or deleted during the copy; nothing was written. Retry."), s.err)
	case s.err != nil:
		return fmt.Errorf("read the copy source %s/%s: %w", s.src.bucket, s.src.key, s.err)
	}
	return writeErr(err)
}

// copyObjectResult is CopyObject's answer.
type copyObjectResult struct {
	XMLName      xml.Name `xml:"CopyObjectResult"`
	NS           string   `xml:"xmlns,attr"`
	ETag         string
	LastModified string
	checksumFields
	ChecksumType string `xml:",omitempty"`
}

// copyPartResult is UploadPartCopy's answer.
type copyPartResult struct {
	XMLName      xml.Name `xml:"CopyPartResult"`
	NS           string   `xml:"xmlns,attr"`
	ETag         string
	LastModified string
	checksumFields
}

// metadataDirective reads x-amz-metadata-directive: whether the copy
// takes its content type and metadata from the request (REPLACE) rather
// than from the source (COPY, the default).
func metadataDirective(h http.Header) (replace bool, _ error) {
	switch v := h.Get("X-Amz-Metadata-Directive"); v {
	case "", "COPY":
		return false, nil
	case "REPLACE":
		return true, nil
	default:
		return false, errInvalidArgument.with("Unknown metadata directive %q.", truncate(v))
	}
}

// copyChecksum is the checksum a copy computes: the one x-amz-checksum-
// algorithm names, else the algorithm of the source's stored checksum
// (over the whole copy, FULL_OBJECT, also for a composite one), else none.
func copyChecksum(h http.Header, source map[string]string) (*checksumAlg, error) {
	if name := h.Get("X-Amz-Checksum-Algorithm"); name != "" {
		a := checksumAlgByName(name)
		if a == nil {
			return nil, errInvalidRequest.with("Checksum algorithm %q is not supported.", truncate(name))
		}
		return a, nil
	}
	for _, a := range checksumAlgs {
		if _, ok := source[a.name]; ok {
			return a, nil
		}
	}
	return nil, nil
}

// copiedOptions are the content type, user metadata and capture attributes
// of the source, which a copy keeps (but the upload's checksum record of a
// multipart source: the copy is one part).
func copiedOptions(info *client.ClipInfo) *client.PutOptions {
	opts := &client.PutOptions{ContentType: info.ContentType, Capture: info.Capture}
	for k, v := range info.Metadata {
		if opts.Metadata == nil {
			opts.Metadata = map[string]string{}
		}
		opts.Metadata[k] = v
	}
	return opts
}

// objectCopy is what a CopyObject asks for, as far as the request tells.
type objectCopy struct {
	src     copySource
	replace bool               // x-amz-metadata-directive: REPLACE
	opts    *client.PutOptions // the request's content type and metadata if replace
	cond    putCondition       // on the destination
}

// parseObjectCopy reads a CopyObject's headers. A copy of an object onto
// itself must change its metadata (REPLACE), as in S3.
func parseObjectCopy(req *request) (*objectCopy, error) {
	if err := checkDefaultsOnly(req.Header); err != nil {
		return nil, err
	}
	src, err := parseCopySource(req.Header.Get("X-Amz-Copy-Source"))
	if err != nil {
		return nil, err
	}

	oc := &objectCopy{src: src}
	if oc.replace, err = metadataDirective(req.Header); err != nil {
		return nil, err
	}
	if src.bucket == req.bucket && src.key == req.key && !oc.replace {
		return nil, errInvalidRequest.with(selfCopyMessage)
	}
	if oc.replace {
		if oc.opts, err = putOptions(req.Header); err != nil {
			return nil, err
		}
	}
	if oc.cond, err = parsePutCondition(req.Header); err != nil {
		return nil, err
	}
	return oc, nil
}

// copyObject copies the source into the request's key: read from the
// storage nodes and written to new shards under the new clip id, the MD5
// (the ETag) and any checksum computed beside the write.
func (g *Gateway) copyObject(w *response, req *request) error {
	if len(req.key) > maxKeyLen {
		return errKeyTooLong
	}
	oc, err := parseObjectCopy(req)
	if err != nil {
		return err
	}
	if err := g.checkRead(req, oc.src.bucket); err != nil {
		return err
	}
	if err := checkNoBody(req); err != nil {
		return err
	}
	r, err := g.openSource(req, oc.src)
	if err != nil {
		return err
	}
	defer r.Close()
	info, opts := r.Info(), oc.opts
	if !oc.replace {
		opts = copiedOptions(info) // the source's capture attributes too; REPLACE takes the request's
	}
	alg, err := copyChecksum(req.Header, info.Checksums)
	if err != nil {
		return err
	}
	if opts.IfGenerationMatch, err = g.checkPutCondition(req, oc.cond); err != nil {
		return err
	}
	fast, err := g.fastETags(req)
	if err != nil {
		return err
	}
	s, err := g.newCopyStream(req.Context(), oc.src, r, 0, info.Size, &digests{alg: alg, fast: fast, newMD5: g.newMD5})
	if err != nil {
		return err
	}
	defer s.stop()
	opts.SizeHint, opts.Finish = info.Size, s.finish
	w.Header().Set("x-amz-copy-source-version-id", strconv.FormatUint(info.Generation, 10))
	ka := g.startKeepAlive(w) // a long copy's answer begins before it ends
	out, err := g.cfg.Client.Put(req.Context(), req.bucket, req.key, s.d, opts)
	ka.end()
	if err != nil {
		return s.failed(err, func(err error) error { return g.putError(req.Context(), req, err, opts.IfGenerationMatch) })
	}
	s.etag = objectETag(s.etag, out.ClipID)
	res := copyObjectResult{NS: xmlNS, ETag: quoteETag(s.etag), LastModified: out.Created.UTC().Format(s3Time),
		checksumFields: checksumFieldsOf(s.sums)}
	if len(s.sums) > 0 {
		res.ChecksumType = "FULL_OBJECT"
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

// parseCopyRange reads x-amz-copy-source-range, "bytes=first-last"; ok is
// false if the header is absent.
func parseCopyRange(v string) (first, last int64, ok bool, _ error) {
	if v == "" {
		return 0, 0, false, nil
	}
	bad := errInvalidArgument.with("The x-amz-copy-source-range value must be of the form bytes=first-last where first and last " +
		"are the zero-based offsets of the first and last bytes to copy")
	spec, found := strings.CutPrefix(v, "bytes=")
	a, b, found2 := strings.Cut(spec, "-")
	if !found || !found2 {
		return 0, 0, false, bad
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return 0, 0, false, bad
	}
	return first, last, true, nil
}

// uploadPartCopy copies the source, or a range of it, into a part of a
// multipart upload, hashed as UploadPart hashes a part: the MD5 (the
// part's ETag) and the upload's checksum, if it has one.
func (g *Gateway) uploadPartCopy(w *response, req *request) error {
	num, err := parsePartNumber(req.query.Get("partNumber"))
	if err != nil {
		return err
	}
	src, err := parseCopySource(req.Header.Get("X-Amz-Copy-Source"))
	if err != nil {
		return err
	}
	if err := g.checkRead(req, src.bucket); err != nil {
		return err
	}
	first, last, ranged, err := parseCopyRange(req.Header.Get("X-Amz-Copy-Source-Range"))
	if err != nil {
		return err
	}
	if err := checkNoBody(req); err != nil {
		return err
	}
	up, err := g.upload(req)
	if err != nil {
		return err
	}
	want := &digests{part: true, newMD5: g.newMD5}
	if err := recordedChecksum(up.ChecksumAlgorithm).partDigests(want); err != nil {
		return err
	}
	if want.fast, err = g.fastETags(req); err != nil {
		return err
	}
	r, err := g.openSource(req, src)
	if err != nil {
		return err
	}
	defer r.Close()
	info := r.Info()
	if !ranged {
		first, last = 0, info.Size-1
	} else if last >= info.Size {
		return errInvalidRange.with("The range bytes=%d-%d is not within the source object of %d bytes.", first, last, info.Size)
	}
	n := last - first + 1
	if n > maxPartSize {
		return errInvalidRequest.with("The specified copy source is larger than the maximum allowable size for a copy source: %d", maxPartSize)
	}
	s, err := g.newCopyStream(req.Context(), src, r, first, n, want)
	if err != nil {
		return err
	}
	defer s.stop()
	opts := &client.PartOptions{SizeHint: n, Finish: s.finish}
	w.Header().Set("x-amz-copy-source-version-id", strconv.FormatUint(info.Generation, 10))
	ka := g.startKeepAlive(w) // a long copy's answer begins before it ends
	part, err := g.cfg.Client.PutPart(req.Context(), req.bucket, req.key, up.UploadID, num, s.d, opts)
	ka.end()
	if err != nil {
		return s.failed(err, func(err error) error { return g.uploadError(req.Context(), req, err) })
	}
	writeXML(w, http.StatusOK, copyPartResult{NS: xmlNS, ETag: quoteETag(s.etag), LastModified: part.Created.UTC().Format(s3Time),
		checksumFields: checksumFieldsOf(s.sums)})
	return nil
}
