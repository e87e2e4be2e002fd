// Package sigv4 is the server side of AWS Signature Version 4 as Amazon S3
// speaks it: it authenticates the requests the S3 gateway receives and
// decodes their bodies.
//
// Verify checks a request signed with an Authorization header or with a
// presigned query string. It rebuilds the canonical request the way S3
// does (the path as the client sent it, the query re-encoded and sorted,
// the signed headers trimmed), asks a KeyFunc for the derived signing key
// of the credential scope (the gateway never sees a secret; see DeriveKey)
// and compares signatures in constant time. Each way a request can fail
// has its own *Error, carrying the S3 error code, a message saying what was
// wrong and the HTTP status, for the gateway to render as S3 XML.
//
// Auth.Body then gives the object's bytes whatever the payload mode: a body
// whose SHA-256 was signed is hashed as it streams and fails at EOF if it
// differs; an aws-chunked body is stripped of its framing, each chunk
// signature and the trailer signature are checked as they arrive, and the
// trailing checksums are kept for the caller. Memory stays bounded
// whatever the body. A caller that stores an object only after a clean
// io.EOF never stores bytes that failed verification; DESIGN.md explains
// why bytes of a chunk may be handed out before its signature is checked.
//
// Presign writes presigned URLs, for tests and for the command line.
//
// The package uses the standard library only.
package sigv4
