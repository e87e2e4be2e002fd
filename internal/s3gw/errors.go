package s3gw

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/sigv4"
)

// s3Error is an S3 error answer: Code is the <Code> of the XML error
// document, Message its <Message>, HTTPStatus the status it is sent with.
// The gateway's errors are instances of the sentinels below, made by with;
// errors.Is matches an instance to its sentinel.
type s3Error struct {
	Code       string
	Message    string
	HTTPStatus int

	kind *s3Error // the sentinel this error is an instance of; nil for sentinels
	// bucket and key are what the error is about when it is not the
	// request's object (a copy's source); "" for the request's.
	bucket, key string
	// region, for a request signed for another region, is the one to sign
	// for: S3 names it, and s3cmd signs its request again for it.
	region string
}

func (e *s3Error) Error() string { return "s3: " + e.Code + ": " + e.Message }

// Is reports whether target is e or the sentinel e was made from.
func (e *s3Error) Is(target error) bool {
	t, ok := target.(*s3Error)
	return ok && (t == e || (e.kind != nil && t == e.kind))
}

// with returns an instance of the sentinel e with the message msg (e's
// message if msg is empty).
func (e *s3Error) with(format string, args ...any) *s3Error {
	msg := e.Message
	if format != "" {
		msg = fmt.Sprintf(format, args...)
	}
	return &s3Error{Code: e.Code, Message: msg, HTTPStatus: e.HTTPStatus, kind: e}
}

// about returns an instance of e about bucket/key rather than the
// request's object: the error document names them.
func (e *s3Error) about(bucket, key string) *s3Error {
	c := *e
	if c.kind == nil {
		c.kind = e
	}
	c.bucket, c.key = bucket, key
	return &c
}

func s3err(code string, status int, msg string) *s3Error {
	return &s3Error{Code: code, Message: msg, HTTPStatus: status}
}

// The S3 errors the gateway answers, with S3's codes, statuses and
// messages.
var (
	errAccessDenied     = s3err("AccessDenied", http.StatusForbidden, "Access Denied")
	errBadDigest        = s3err("BadDigest", http.StatusBadRequest, "The Content-MD5 you specified did not match what we received.")
	errMalformedAuth    = s3err("AuthorizationHeaderMalformed", http.StatusBadRequest, "The authorization header is malformed")
	errBucketExists     = s3err("BucketAlreadyOwnedByYou", http.StatusConflict, "Your previous request to create the named bucket succeeded and you already own it.")
	errBucketNotEmpty   = s3err("BucketNotEmpty", http.StatusConflict, "The bucket you tried to delete is not empty")
	errEntityTooLarge   = s3err("EntityTooLarge", http.StatusBadRequest, "Your proposed upload exceeds the maximum allowed object size.")
	errEntityTooSmall   = s3err("EntityTooSmall", http.StatusBadRequest, "Your proposed upload is smaller than the minimum allowed object size.")
	errIncompleteBody   = s3err("IncompleteBody", http.StatusBadRequest, "You did not provide the number of bytes specified by the Content-Length HTTP header")
	errInternal         = s3err("InternalError", http.StatusInternalServerError, "We encountered an internal error. Please try again.")
	errInvalidArgument  = s3err("InvalidArgument", http.StatusBadRequest, "Invalid Argument")
	errInvalidBucket    = s3err("InvalidBucketName", http.StatusBadRequest, "The specified bucket is not valid.")
	errInvalidDigest    = s3err("InvalidDigest", http.StatusBadRequest, "The Content-MD5 you specified is not valid.")
	errInvalidLocation  = s3err("InvalidLocationConstraint", http.StatusBadRequest, "The specified location-constraint is not valid")
	errInvalidPart      = s3err("InvalidPart", http.StatusBadRequest, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.")
	errInvalidPartNum   = s3err("InvalidPartNumber", http.StatusRequestedRangeNotSatisfiable, "The requested partnumber is not satisfiable")
	errInvalidPartOrder = s3err("InvalidPartOrder", http.StatusBadRequest, "The list of parts was not in ascending order. The parts list must be specified in order by part number.")
	errInvalidRange     = s3err("InvalidRange", http.StatusRequestedRangeNotSatisfiable, "The requested range is not satisfiable")
	errInvalidRequest   = s3err("InvalidRequest", http.StatusBadRequest, "Invalid Request")
	errKeyTooLong       = s3err("KeyTooLongError", http.StatusBadRequest, "Your key is too long")
	errMalformedXML     = s3err("MalformedXML", http.StatusBadRequest, "The XML you provided was not well-formed or did not validate against our published schema")
	errMetadataTooLarge = s3err("MetadataTooLarge", http.StatusBadRequest, "Your metadata headers exceed the maximum allowed metadata size")
	errMethodNotAllowed = s3err("MethodNotAllowed", http.StatusMethodNotAllowed, "The specified method is not allowed against this resource.")
	errMissingLength    = s3err("MissingContentLength", http.StatusLengthRequired, "You must provide the Content-Length HTTP header.")
	errNoSuchBucket     = s3err("NoSuchBucket", http.StatusNotFound, "The specified bucket does not exist")
	errNoSuchKey        = s3err("NoSuchKey", http.StatusNotFound, "The specified key does not exist.")
	errNoSuchVersion    = s3err("NoSuchVersion", http.StatusNotFound, "The specified version does not exist.")
	errNoSuchUpload     = s3err("NoSuchUpload", http.StatusNotFound, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")
	errNotImplemented   = s3err("NotImplemented", http.StatusNotImplemented, "A header or query you provided implies functionality that is not implemented")
	errPrecondition     = s3err("PreconditionFailed", http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold")
	errRequestTimeout   = s3err("RequestTimeout", http.StatusBadRequest, "Your socket connection to the server was not read from or written to within the timeout period.")
	errUnavailable      = s3err("ServiceUnavailable", http.StatusServiceUnavailable, "Please reduce your request rate.")
	errInvalidToken     = s3err("InvalidToken", http.StatusBadRequest, "The provided token is malformed or otherwise invalid.")
)

// retryAfter is the Retry-After of a ServiceUnavailable answer, seconds.
const retryAfter = "2"

// notFound says which NoSuch* error a client.ErrNotFound stands for.
type notFound int

const (
	bucketNotFound notFound = iota // the operation names only a bucket
	keyNotFound                    // the bucket exists; the key does not
)

// toS3 maps an error of an operation to the S3 error to answer. nf says
// what a client.ErrNotFound means. Errors that are not the client's doing
// and carry no S3 meaning are InternalError; their text is logged, never
// sent.
func toS3(err error, nf notFound) *s3Error {
	var e *s3Error
	var se *sigv4.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &se):
		return &s3Error{Code: se.Code, Message: se.Message, HTTPStatus: se.HTTPStatus}
	case errors.Is(err, client.ErrNotFound) && nf == keyNotFound:
		return errNoSuchKey
	case errors.Is(err, client.ErrNotFound):
		return errNoSuchBucket
	case errors.Is(err, client.ErrDeadlinePassed):
		return errRequestTimeout.with("The upload took longer than the cluster allows; nothing was stored.")
	case errors.Is(err, client.ErrInvalidArgument):
		return errInvalidArgument.with("%s", clientMessage(err))
	case errors.Is(err, client.ErrOutcomeUnknown):
		return errUnavailable.with("The cluster did not confirm the write in time; read the object to learn whether it landed.")
	case errors.Is(err, client.ErrClipChanged):
		return errUnavailable.with("The object was replaced during the read; retry.")
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrPrecondition),
		errors.Is(err, context.DeadlineExceeded):
		// errPrecondition without a condition of the request: too few
		// storage nodes for the write quorum.
		return errUnavailable.with("The cluster cannot serve the request now; retry.")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errIncompleteBody
	}
	return errInternal
}

func isSigv4(err error) bool {
	var se *sigv4.Error
	return errors.As(err, &se)
}

// clientMessage is the server's message in a client error, without the
// call it was made in: what a client mistake says to fix.
func clientMessage(err error) string {
	var se *client.StatusError
	if errors.As(err, &se) {
		return se.Message
	}
	return err.Error()
}

// errorDoc is S3's XML error document.
type errorDoc struct {
	XMLName    xml.Name `xml:"Error"`
	Code       string
	Message    string
	Key        string `xml:",omitempty"`
	BucketName string `xml:",omitempty"`
	UploadID   string `xml:"UploadId,omitempty"`
	Region     string `xml:",omitempty"`
	Resource   string
	RequestID  string `xml:"RequestId"`
}

// writeError answers e for req, unless the response has begun: then the
// connection can only be cut, which returning with a short body does.
func (g *Gateway) writeError(w *response, req *request, err error) {
	nf := keyNotFound
	if req.key == "" {
		nf = bucketNotFound
	}
	e := toS3(err, nf)
	level := g.log.Debug
	if e.HTTPStatus >= 500 && e.HTTPStatus != http.StatusNotImplemented && req.Context().Err() == nil { // not a client that went away
		level = g.log.Warn
	}
	level("request failed", "id", req.id, "op", req.op, "method", req.Method, "bucket", req.bucket, "key", req.key,
		"code", e.Code, "status", e.HTTPStatus, "err", err)
	if w.status != 0 && !w.keptAlive {
		return // the answer has begun: the client sees it cut short
	}
	if e.HTTPStatus == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	doc := errorDoc{Code: e.Code, Message: e.Message, Region: e.region, Resource: req.URL.Path, RequestID: req.id}
	bucket, key := req.bucket, req.key
	if e.bucket != "" {
		bucket, key = e.bucket, e.key
	}
	switch e.Code {
	case errNoSuchKey.Code, errNoSuchVersion.Code:
		doc.Key = key
	case errNoSuchBucket.Code, errBucketNotEmpty.Code, errBucketExists.Code:
		doc.BucketName = bucket
	case errNoSuchUpload.Code:
		doc.UploadID = req.query.Get("uploadId")
	}
	writeXML(w, e.HTTPStatus, doc)
}
