package sigv4

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
)

// Service is the only service name Verify accepts in a credential scope:
// a signature made for another AWS service is not an S3 request.
const Service = "s3"

// KeyFunc returns the signing key (DeriveKey's result) of an access key for
// one credential scope: date (YYYYMMDD), region and service. It returns an
// error wrapping ErrUnknownAccessKey when the access key does not exist;
// any other error (the metadata service is unreachable, ctx is done) is
// returned by Verify wrapped, not as an *Error.
//
// A KeyFunc is also where a region the gateway does not serve is refused:
// Verify accepts any region that has a key.
type KeyFunc func(ctx context.Context, accessKey, date, region, service string) ([]byte, error)

// DeriveKey returns the SigV4 signing key of a secret access key for one
// credential scope: HMAC-SHA256 chained over "AWS4"+secret, date
// (YYYYMMDD), region, service and "aws4_request". The key signs every
// request of that scope; the secret itself is never needed to verify.
func DeriveKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
