package s3gw

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/clipstore/clipstore/client"
)

// s3Time is how S3's XML documents write times.
const s3Time = "2006-01-02T15:04:05.000Z"

type owner struct {
	ID          string
	DisplayName string
}

type listBucketsResult struct {
	XMLName xml.Name `xml:"ListAllMyBucketsResult"`
	NS      string   `xml:"xmlns,attr"`
	Owner   owner
	Buckets []bucketEntry `xml:"Buckets>Bucket"`
}

type bucketEntry struct {
	Name         string
	CreationDate string
	BucketRegion string
}

func (g *Gateway) listBuckets(w *response, req *request) error {
	buckets, err := g.cfg.Client.ListBuckets(req.Context())
	if err != nil {
		return err
	}
	res := listBucketsResult{NS: xmlNS, Owner: owner{ID: req.auth.AccessKey, DisplayName: req.auth.AccessKey}}
	for _, b := range buckets {
		if !req.policy.AllowsAny(b.Name) {
			continue
		}
		res.Buckets = append(res.Buckets, bucketEntry{Name: b.Name, CreationDate: b.Created.UTC().Format(s3Time),
			BucketRegion: g.cfg.Region})
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

// maxConfigBody bounds the XML bodies of bucket requests.
const maxConfigBody = 64 << 10

type createBucketConfiguration struct {
	XMLName            xml.Name `xml:"CreateBucketConfiguration"`
	LocationConstraint string
}

func (g *Gateway) createBucket(w *response, req *request) error {
	if err := checkBucketName(req.bucket); err != nil {
		return err
	}
	if err := checkACL(req.Header); err != nil {
		return err
	}
	if strings.EqualFold(req.Header.Get("X-Amz-Bucket-Object-Lock-Enabled"), "true") {
		return errNotImplemented.with("Object Lock is not implemented.")
	}
	body, err := readSmallBody(req, maxConfigBody)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		var conf createBucketConfiguration
		if err := xml.Unmarshal(body, &conf); err != nil {
			return errMalformedXML
		}
		if loc := conf.LocationConstraint; loc != "" && loc != g.cfg.Region {
			return errInvalidLocation.with("The specified location-constraint %q is not valid: this endpoint serves %s", truncate(loc), g.cfg.Region)
		}
	}
	err = g.cfg.Client.CreateBucket(req.Context(), req.bucket, nil)
	switch {
	case errors.Is(err, client.ErrExists):
		return errBucketExists
	case errors.Is(err, client.ErrInvalidArgument):
		return errInvalidBucket.with("%s", clientMessage(err))
	case err != nil:
		return err
	}
	w.Header().Set("Location", "/"+req.bucket)
	w.WriteHeader(http.StatusOK)
	return nil
}

// checkBucketName checks S3's rules for bucket names, which are meta's.
func checkBucketName(name string) error {
	bad := len(name) < 3 || len(name) > 63 || strings.Contains(name, "..") ||
		!isLowerAlnum(name[0]) || !isLowerAlnum(name[len(name)-1])
	for i := 0; i < len(name) && !bad; i++ {
		bad = !isLowerAlnum(name[i]) && name[i] != '.' && name[i] != '-'
	}
	if bad {
		return errInvalidBucket
	}
	return nil
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func (g *Gateway) deleteBucket(w *response, req *request) error {
	err := g.cfg.Client.DeleteBucket(req.Context(), req.bucket)
	switch {
	case errors.Is(err, client.ErrPrecondition):
		return errBucketNotEmpty
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (g *Gateway) headBucket(w *response, req *request) error {
	if err := g.checkBucket(req.Context(), req.bucket); err != nil {
		return err
	}
	w.Header().Set("x-amz-bucket-region", g.cfg.Region)
	w.WriteHeader(http.StatusOK)
	return nil
}

type locationConstraint struct {
	XMLName xml.Name `xml:"LocationConstraint"`
	NS      string   `xml:"xmlns,attr"`
	Region  string   `xml:",chardata"`
}

func (g *Gateway) getBucketLocation(w *response, req *request) error {
	if err := g.checkBucket(req.Context(), req.bucket); err != nil {
		return err
	}
	loc := locationConstraint{NS: xmlNS, Region: g.cfg.Region}
	if loc.Region == DefaultRegion {
		loc.Region = "" // S3 answers us-east-1 as the empty constraint
	}
	writeXML(w, http.StatusOK, loc)
	return nil
}

type versioningConfiguration struct {
	XMLName xml.Name `xml:"VersioningConfiguration"`
	NS      string   `xml:"xmlns,attr"`
}

// getBucketVersioning answers what S3 answers for a bucket whose
// versioning was never enabled: an empty configuration (tools such as
// rclone ask before they delete).
func (g *Gateway) getBucketVersioning(w *response, req *request) error {
	if err := g.checkBucket(req.Context(), req.bucket); err != nil {
		return err
	}
	writeXML(w, http.StatusOK, versioningConfiguration{NS: xmlNS})
	return nil
}

// checkBucket returns errNoSuchBucket unless bucket exists. The client
// has no call for one bucket; the list of buckets is short.
func (g *Gateway) checkBucket(ctx context.Context, bucket string) error {
	buckets, err := g.cfg.Client.ListBuckets(ctx)
	if err != nil {
		return err
	}
	for _, b := range buckets {
		if b.Name == bucket {
			return nil
		}
	}
	return errNoSuchBucket
}

// notFoundError tells a missing bucket from a missing key after an object
// operation found nothing (meta answers NotFound for both).
func (g *Gateway) notFoundError(ctx context.Context, req *request) error {
	if err := g.checkBucket(ctx, req.bucket); err != nil {
		return err
	}
	return errNoSuchKey
}

// readSmallBody reads a request body that must be at most limit bytes.
func readSmallBody(req *request, limit int64) ([]byte, error) {
	_, body, err := req.body()
	if err != nil {
		return nil, err
	}
	return readAtMost(body, limit)
}

// readAtMost reads r to its end, which must come within limit bytes.
func readAtMost(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	switch {
	case err != nil:
		return nil, bodyError(err)
	case int64(len(b)) > limit:
		return nil, errMalformedXML.with("The XML document exceeds %d bytes.", limit)
	}
	return b, nil
}

// bodyError is the error to answer for a failed read of a request body:
// the verifier's (or the gateway's) error, else IncompleteBody: the body
// was cut short or its connection failed.
func bodyError(err error) error {
	var e *s3Error
	if isSigv4(err) || errors.As(err, &e) {
		return err
	}
	return &brokenBodyError{err}
}

// brokenBodyError is IncompleteBody for a body whose read failed with err.
// It does not wrap err: an io.ErrUnexpectedEOF would read as the end of
// the object to the erasure encoder.
type brokenBodyError struct{ err error }

func (e *brokenBodyError) Error() string { return "read request body: " + e.err.Error() }
func (e *brokenBodyError) Unwrap() error { return errIncompleteBody }

// lastModified is a record's time as the Last-Modified header has it.
func lastModified(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }
