package sigv4

import (
	"fmt"
	"net/http"
)

// Error is a failed authentication or a body that failed verification, in
// the terms of an S3 error response: Code is the S3 error code (the
// <Code> element), Message says what was wrong, HTTPStatus is the status
// to answer with.
//
// The package's sentinels below are *Error values with a generic message.
// The errors Verify and Body return are new *Error values with the same
// Code and HTTPStatus and a specific Message; errors.Is matches them to
// their sentinel, and errors.As extracts them for rendering.
type Error struct {
	Code       string
	Message    string
	HTTPStatus int

	// kind is the sentinel this error is an instance of; nil for the
	// sentinels themselves.
	kind *Error
}

// Error implements error.
func (e *Error) Error() string {
	return "sigv4: " + e.Code + ": " + e.Message
}

// Is reports whether target is e itself or the sentinel e was made from.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && (t == e || (e.kind != nil && t == e.kind))
}

// with returns an instance of the sentinel e whose message adds the
// formatted detail to e's message.
func (e *Error) with(format string, args ...any) *Error {
	return &Error{
		Code:       e.Code,
		Message:    e.Message + ": " + fmt.Sprintf(format, args...),
		HTTPStatus: e.HTTPStatus,
		kind:       e,
	}
}

func sentinel(code string, status int, message string) *Error {
	return &Error{Code: code, Message: message, HTTPStatus: status}
}

// Errors of Verify: how a request's authentication can fail.
var (
	// ErrMissingAuth: the request carries neither an Authorization header
	// nor a presigned query string. The gateway may treat it as anonymous.
	ErrMissingAuth = sentinel("AccessDenied", http.StatusForbidden,
		"Request carries no AWS Signature Version 4 authentication")

	// ErrUnsupportedAlgorithm: the request is signed with something other
	// than AWS4-HMAC-SHA256, such as Signature Version 2 or SigV4a. S3
	// answers the same for Signature Version 2 in the regions that accept
	// only Version 4.
	ErrUnsupportedAlgorithm = sentinel("InvalidRequest", http.StatusBadRequest,
		"The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256")

	// ErrAmbiguousAuth: the request carries both an Authorization header
	// and a presigned query string.
	ErrAmbiguousAuth = sentinel("InvalidArgument", http.StatusBadRequest,
		"Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified")

	// ErrMalformedAuthorization: the Authorization header, its credential
	// scope or its list of signed headers cannot be used.
	ErrMalformedAuthorization = sentinel("AuthorizationHeaderMalformed", http.StatusBadRequest,
		"The authorization header is malformed")

	// ErrMalformedPresign: a presigned URL's X-Amz-* parameters are
	// missing, repeated or malformed, its credential scope cannot be used,
	// or X-Amz-Expires is negative or longer than seven days.
	ErrMalformedPresign = sentinel("AuthorizationQueryParametersError", http.StatusBadRequest,
		"The query-string authentication parameters are malformed")

	// ErrInvalidQuery: the query string is not valid percent-encoding, so
	// it has no canonical form.
	ErrInvalidQuery = sentinel("InvalidArgument", http.StatusBadRequest,
		"The query string is not valid percent-encoding")

	// ErrMissingDate: the request has neither a valid x-amz-date nor a
	// valid Date header.
	ErrMissingDate = sentinel("AccessDenied", http.StatusForbidden,
		"AWS authentication requires a valid Date or x-amz-date header")

	// ErrRequestTimeTooSkewed: a header-signed request was signed more than
	// MaxSkew away from the server's time.
	ErrRequestTimeTooSkewed = sentinel("RequestTimeTooSkewed", http.StatusForbidden,
		"The difference between the request time and the current time is too large")

	// ErrRequestExpired: a presigned URL's validity has ended.
	ErrRequestExpired = sentinel("AccessDenied", http.StatusForbidden, "Request has expired")

	// ErrRequestNotYetValid: a presigned URL is dated more than MaxSkew in
	// the future.
	ErrRequestNotYetValid = sentinel("AccessDenied", http.StatusForbidden, "Request is not valid yet")

	// ErrUnknownAccessKey: no such access key. A KeyFunc returns an error
	// wrapping it, and Verify answers with an instance of it.
	ErrUnknownAccessKey = sentinel("InvalidAccessKeyId", http.StatusForbidden,
		"The AWS Access Key Id you provided does not exist in our records")

	// ErrSignatureMismatch: the request's, a chunk's or the trailer's
	// signature is not the one the signing key gives.
	ErrSignatureMismatch = sentinel("SignatureDoesNotMatch", http.StatusForbidden,
		"The request signature we calculated does not match the signature you provided. Check your key and signing method")

	// ErrHeadersNotSigned: the request has x-amz-* headers that are not
	// among its signed headers; S3 requires every one to be signed.
	ErrHeadersNotSigned = sentinel("AccessDenied", http.StatusForbidden,
		"There were headers present in the request which were not signed")

	// ErrMissingContentSHA256: a header-signed request lacks the
	// x-amz-content-sha256 header that S3 requires.
	ErrMissingContentSHA256 = sentinel("InvalidRequest", http.StatusBadRequest,
		"Missing required header for this request: x-amz-content-sha256")

	// ErrInvalidContentSHA256: x-amz-content-sha256 is neither a hex
	// SHA-256 nor one of the payload modes S3 knows.
	ErrInvalidContentSHA256 = sentinel("InvalidArgument", http.StatusBadRequest,
		"x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "+
			"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-UNSIGNED-PAYLOAD-TRAILER or a valid SHA-256 value")
)

// Errors of Body and of reading a Reader: how a body can fail.
var (
	// ErrContentSHA256Mismatch: the body's SHA-256 is not the one the
	// request declared and signed.
	ErrContentSHA256Mismatch = sentinel("XAmzContentSHA256Mismatch", http.StatusBadRequest,
		"The provided 'x-amz-content-sha256' header does not match what was computed")

	// ErrMissingDecodedLength: an aws-chunked body without a valid
	// x-amz-decoded-content-length header.
	ErrMissingDecodedLength = sentinel("MissingContentLength", http.StatusLengthRequired,
		"An aws-chunked body requires the x-amz-decoded-content-length header")

	// ErrIncompleteBody: the body ended early, or its decoded length is
	// not x-amz-decoded-content-length.
	ErrIncompleteBody = sentinel("IncompleteBody", http.StatusBadRequest,
		"You did not provide the number of bytes specified by the request headers")

	// ErrMalformedChunk: the aws-chunked framing is broken: a bad chunk
	// header, a chunk too large, data not followed by CRLF, bytes after
	// the end.
	ErrMalformedChunk = sentinel("InvalidRequest", http.StatusBadRequest,
		"The aws-chunked body is malformed")

	// ErrMalformedTrailer: the trailing headers of an aws-chunked body are
	// malformed, undeclared, repeated, too large, or a trailer named in
	// x-amz-trailer never arrived.
	ErrMalformedTrailer = sentinel("MalformedTrailerError", http.StatusBadRequest,
		"The request contained trailing data that was not well-formed or did not conform to our published schema")
)
