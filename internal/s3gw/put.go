package s3gw

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/sigv4"
)

// S3's limits on what a PutObject carries.
const (
	maxKeyLen      = 1024
	maxUserMetaLen = 2 << 10 // names and values of x-amz-meta-*, in bytes
)

// putCondition is a PutObject's condition on the key's current state.
type putCondition struct {
	ifNoneMatch bool   // If-None-Match: *: only if the key does not exist
	ifMatch     string // If-Match: only if the current ETag is one of these
}

func (g *Gateway) putObject(w *response, req *request) error {
	opts, err := writeOptions(req)
	if err != nil {
		return err
	}
	cond, err := parsePutCondition(req.Header)
	if err != nil {
		return err
	}
	body, counted, err := req.body()
	if err != nil {
		return err
	}
	if body.Size() < 0 {
		return errMissingLength
	}
	want, err := parseDigests(req.Header, body.DeclaredTrailers())
	if err != nil {
		return err
	}
	if opts.IfGenerationMatch, err = g.checkPutCondition(req, cond); err != nil {
		return err
	}
	if want.fast, err = g.fastETags(req); err != nil {
		return err
	}
	want.newMD5 = g.newMD5
	opts.SizeHint = body.Size()
	db := newDigestedBody(body, counted, want)
	defer db.stop()
	opts.Finish = db.finish
	out, err := g.cfg.Client.Put(req.Context(), req.bucket, req.key, db.d, opts)
	if err != nil {
		return g.putError(req.Context(), req, err, opts.IfGenerationMatch)
	}
	db.etag = objectETag(db.etag, out.ClipID)
	db.setHeaders(w.Header())
	if len(db.sums) > 0 {
		w.Header().Set("x-amz-checksum-type", "FULL_OBJECT")
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// digestedBody is a request body on its way to the cluster through a
// digester (PutObject, UploadPart), with the digests to check once every
// byte is stored.
type digestedBody struct {
	d    *digester
	body *sigv4.Reader
	want *digests
	etag string            // set by finish: the hex MD5
	sums map[string]string // set by finish: the checksum to store, if any
}

func newDigestedBody(body *sigv4.Reader, counted io.Reader, want *digests) *digestedBody {
	return &digestedBody{d: newDigester(counted, want.hashes()), body: body, want: want}
}

// stop ends the hashing; deferred by the handler.
func (b *digestedBody) stop() { b.d.stop() }

// finish is PutOptions.Finish and PartOptions.Finish: once the cluster has
// read and stored the whole body, it checks that the body is as long as
// declared and that its digests match, and returns the ETag and checksums
// to store. An error aborts the write.
func (b *digestedBody) finish() (*client.PutFinish, error) {
	sums, err := b.d.sums()
	if err != nil {
		return nil, err
	}
	if b.d.n != b.body.Size() {
		return nil, errIncompleteBody.with("The body has %d bytes; the request declared %d.", b.d.n, b.body.Size())
	}
	etag, checksums, err := b.want.verified(sums, b.body)
	if err != nil {
		return nil, err
	}
	b.etag, b.sums = etag, checksums
	return &client.PutFinish{ETag: etag, Checksums: checksums}, nil
}

// setHeaders sets the ETag and checksum headers of the answer to a write.
func (b *digestedBody) setHeaders(h http.Header) {
	h.Set("ETag", quoteETag(b.etag))
	for alg, v := range b.sums {
		h.Set("x-amz-checksum-"+alg, v)
	}
}

// writeOptions checks what a new object's request asks for (its key's
// length, default ACL and storage class) and reads its options: PutObject
// and CreateMultipartUpload.
func writeOptions(req *request) (*client.PutOptions, error) {
	if len(req.key) > maxKeyLen {
		return nil, errKeyTooLong
	}
	if err := checkDefaultsOnly(req.Header); err != nil {
		return nil, err
	}
	return putOptions(req.Header)
}

// putOptions reads the content type, the user metadata (x-amz-meta-*,
// names lowercased) and the capture attributes of a write.
func putOptions(h http.Header) (*client.PutOptions, error) {
	opts := &client.PutOptions{ContentType: h.Get("Content-Type")}
	size := 0
	for name, vals := range h {
		meta, ok := strings.CutPrefix(strings.ToLower(name), "x-amz-meta-")
		if !ok {
			continue
		}
		if meta == "" {
			return nil, errInvalidArgument.with("A metadata header must have a name after x-amz-meta-.")
		}
		if opts.Metadata == nil {
			opts.Metadata = map[string]string{}
		}
		v := strings.Join(vals, ",")
		opts.Metadata[meta] = v
		size += len(meta) + len(v)
	}
	if size > maxUserMetaLen {
		return nil, errMetadataTooLarge.with("Your metadata headers are %d bytes; at most %d are allowed.", size, maxUserMetaLen)
	}
	var err error
	if opts.Capture, err = captureOf(opts.Metadata); err != nil {
		return nil, err
	}
	return opts, nil
}

// The user metadata (x-amz-meta-<name>) that is also stored as the clip's
// typed capture attributes, as the native client stores them. They are
// stored twice: the entries stay in the metadata as sent, and GET and HEAD
// answer them from there, so that S3 clients read back exactly the
// headers they wrote (headers made from the typed copy would lose a
// time's offset and the spelling of the tags); the typed copy is what the
// clip index and native clients use. A clip written natively with
// capture attributes and no such metadata answers them made from the
// typed copy (captureMetadata).
const (
	metaVehicleID    = "vehicle-id"
	metaCamera       = "camera"
	metaCaptureStart = "capture-start" // RFC 3339
	metaCaptureEnd   = "capture-end"   // RFC 3339
	metaTags         = "tags"          // comma-separated
)

// captureMetadata is a clip's typed capture attributes as x-amz-meta-*
// values (times RFC 3339 in UTC, tags comma-separated): what a clip
// written natively answers through S3.
func captureMetadata(c *client.Capture) map[string]string {
	if c == nil {
		return nil
	}
	md := map[string]string{}
	if c.VehicleID != "" {
		md[metaVehicleID] = c.VehicleID
	}
	if c.Camera != "" {
		md[metaCamera] = c.Camera
	}
	if !c.Start.IsZero() {
		md[metaCaptureStart] = c.Start.UTC().Format(time.RFC3339Nano)
	}
	if !c.End.IsZero() {
		md[metaCaptureEnd] = c.End.UTC().Format(time.RFC3339Nano)
	}
	if len(c.Tags) > 0 {
		md[metaTags] = strings.Join(c.Tags, ",")
	}
	return md
}

// captureOf reads the capture attributes from a write's user metadata;
// nil if it has none of them. A time that is not RFC 3339 is
// InvalidArgument naming its header; an empty one is unknown (zero).
// Meta checks the lengths and counts.
func captureOf(md map[string]string) (*client.Capture, error) {
	c := &client.Capture{VehicleID: md[metaVehicleID], Camera: md[metaCamera]}
	found := false
	for _, name := range []string{metaVehicleID, metaCamera, metaCaptureStart, metaCaptureEnd, metaTags} {
		_, ok := md[name]
		found = found || ok
	}
	if !found {
		return nil, nil
	}
	var err error
	if c.Start, err = captureTime(md, metaCaptureStart); err != nil {
		return nil, err
	}
	if c.End, err = captureTime(md, metaCaptureEnd); err != nil {
		return nil, err
	}
	if !c.Start.IsZero() && !c.End.IsZero() && c.End.Before(c.Start) {
		return nil, errInvalidArgument.with("x-amz-meta-%s is before x-amz-meta-%s.", metaCaptureEnd, metaCaptureStart)
	}
	for tag := range strings.SplitSeq(md[metaTags], ",") {
		if tag = strings.TrimSpace(tag); tag != "" {
			c.Tags = append(c.Tags, tag)
		}
	}
	return c, nil
}

// captureTime reads the time in x-amz-meta-<name>.
func captureTime(md map[string]string, name string) (time.Time, error) {
	v := strings.TrimSpace(md[name])
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errInvalidArgument.with("x-amz-meta-%s must be an RFC 3339 time, such as 2024-05-01T13:45:00Z; got %q.",
			name, truncate(v))
	}
	return t, nil
}

// errInvalidStorageClass is S3's answer to a storage class it does not
// know.
var errInvalidStorageClass = s3err("InvalidStorageClass", http.StatusBadRequest, "The storage class you specified is not valid")

// S3's canned ACLs (x-amz-acl) and storage classes (x-amz-storage-class).
// The gateway stores every object one way and keeps no ACLs: each bucket
// and object is its owner's alone, which is what private and
// bucket-owner-full-control ask for (the bucket's owner owns the object)
// and what STANDARD is. The others ask for what it does not do.
var (
	defaultACLs = []string{"private", "bucket-owner-full-control"}
	otherACLs   = []string{"public-read", "public-read-write", "authenticated-read", "aws-exec-read", "bucket-owner-read",
		"log-delivery-write"}
	otherStorageClasses = []string{"REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER",
		"DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE", "FSX_OPENZFS"}
)

// aclGrantHeaders grant access to other principals, explicitly.
var aclGrantHeaders = []string{"X-Amz-Grant-Full-Control", "X-Amz-Grant-Read", "X-Amz-Grant-Read-Acp", "X-Amz-Grant-Write",
	"X-Amz-Grant-Write-Acp"}

// checkDefaultsOnly accepts the ACL and storage-class headers of a write
// (PutObject, CreateMultipartUpload, CopyObject) that ask for what the
// gateway does anyway, and refuses the others: NotImplemented for what S3
// would do, InvalidArgument or InvalidStorageClass for what it does not
// know either.
func checkDefaultsOnly(h http.Header) error {
	if err := checkACL(h); err != nil {
		return err
	}
	switch v := h.Get("X-Amz-Storage-Class"); {
	case v == "" || v == "STANDARD":
		return nil
	case slices.Contains(otherStorageClasses, v):
		return errNotImplemented.with("Storage class %s is not implemented; every object is STANDARD.", v)
	default:
		return errInvalidStorageClass.with("The storage class %q is not valid.", truncate(v))
	}
}

// checkACL accepts a canned ACL (x-amz-acl) that keeps the resource its
// owner's alone, which is what the gateway does, and refuses the others
// and explicit grants. It is the half of checkDefaultsOnly that applies to
// CreateBucket, whose request has no storage class.
func checkACL(h http.Header) error {
	for _, name := range aclGrantHeaders {
		if h.Get(name) != "" {
			return errNotImplemented.with("ACLs are not implemented: the %s header cannot be honoured.", strings.ToLower(name))
		}
	}
	switch v := h.Get("X-Amz-Acl"); {
	case v == "" || slices.Contains(defaultACLs, v):
		return nil
	case slices.Contains(otherACLs, v):
		return errNotImplemented.with("ACLs are not implemented: only the canned ACLs private and bucket-owner-full-control, "+
			"which change nothing, are accepted; got %s.", v)
	default:
		return errInvalidArgument.with("The x-amz-acl value %q is not a canned ACL.", truncate(v))
	}
}

// parsePutCondition reads S3's conditional writes: If-None-Match: * and
// If-Match.
func parsePutCondition(h http.Header) (putCondition, error) {
	var c putCondition
	if v := h.Get("If-None-Match"); v != "" {
		if strings.TrimSpace(v) != "*" {
			return c, errNotImplemented.with("If-None-Match on PutObject supports only '*'.")
		}
		c.ifNoneMatch = true
	}
	c.ifMatch = h.Get("If-Match")
	if c.ifNoneMatch && c.ifMatch != "" {
		return c, errNotImplemented.with("If-Match and If-None-Match together are not supported.")
	}
	return c, nil
}

// checkPutCondition checks a PutObject's condition against the key as it
// is now, so that a write that cannot commit fails before its body is
// sent, and returns the generation the commit must find (nil: no
// condition). The commit checks the generation again, atomically.
func (g *Gateway) checkPutCondition(req *request, c putCondition) (*uint64, error) {
	if !c.ifNoneMatch && c.ifMatch == "" {
		return nil, nil
	}
	info, err := g.cfg.Client.Stat(req.Context(), req.bucket, req.key)
	switch {
	case errors.Is(err, client.ErrNotFound) && c.ifNoneMatch:
		// The bucket may be missing too; the put will say so.
		gen := uint64(0)
		return &gen, nil
	case errors.Is(err, client.ErrNotFound):
		return nil, g.notFoundError(req.Context(), req)
	case err != nil:
		return nil, err
	case c.ifNoneMatch || !etagMatches(c.ifMatch, objectETag(info.ETag, info.ClipID)):
		return nil, errPrecondition
	}
	return &info.Generation, nil
}

// putError maps a failed Put. ErrPrecondition means the generation
// condition failed only if the key is no longer at gen; otherwise it is
// the cluster's (too few storage nodes).
func (g *Gateway) putError(ctx context.Context, req *request, err error, gen *uint64) error {
	switch {
	case errors.Is(err, client.ErrNotFound):
		return errNoSuchBucket // BeginPut finds no bucket
	case gen == nil || !errors.Is(err, client.ErrPrecondition) || errors.Is(err, client.ErrDeadlinePassed):
		return err
	}
	info, serr := g.cfg.Client.Stat(ctx, req.bucket, req.key)
	switch {
	case errors.Is(serr, client.ErrNotFound) && *gen != 0, serr == nil && info.Generation != *gen:
		return errPrecondition
	}
	return err
}
