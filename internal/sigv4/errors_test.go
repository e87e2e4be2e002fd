package sigv4

import (
	"errors"
	"fmt"
	"testing"
)

var sentinels = []*Error{
	ErrMissingAuth, ErrUnsupportedAlgorithm, ErrAmbiguousAuth, ErrMalformedAuthorization, ErrMalformedPresign,
	ErrInvalidQuery, ErrMissingDate, ErrRequestTimeTooSkewed, ErrRequestExpired, ErrRequestNotYetValid,
	ErrUnknownAccessKey, ErrSignatureMismatch, ErrHeadersNotSigned, ErrMissingContentSHA256,
	ErrInvalidContentSHA256, ErrContentSHA256Mismatch, ErrMissingDecodedLength, ErrIncompleteBody,
	ErrMalformedChunk, ErrMalformedTrailer,
}

// An error made from a sentinel matches that sentinel only, even where
// sentinels share an S3 code, keeps its code and status, and adds its
// detail to the message.
func TestErrorIs(t *testing.T) {
	for _, s := range sentinels {
		e := error(s.with("detail %d", 7))
		if wrapped := fmt.Errorf("context: %w", e); !errors.Is(wrapped, s) {
			t.Errorf("%v does not match %v", wrapped, s)
		}
		var got *Error
		if !errors.As(e, &got) || got.Code != s.Code || got.HTTPStatus != s.HTTPStatus || got.Message != s.Message+": detail 7" {
			t.Errorf("instance of %s: %+v", s.Code, got)
		}
		for _, other := range sentinels {
			if other != s && (errors.Is(e, other) || errors.Is(s, other)) {
				t.Errorf("%v matches %v", e, other)
			}
		}
		if s.Code == "" || s.Message == "" || s.HTTPStatus < 400 {
			t.Errorf("sentinel %+v is incomplete", s)
		}
	}
}
