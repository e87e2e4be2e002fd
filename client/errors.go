package client

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors a caller can match with errors.Is. Errors from the cluster wrap one
// of them (see codeTable) together with the server's message.
var (
	// ErrNotFound: no such bucket or clip.
	ErrNotFound = errors.New("clipstore: not found")
	// ErrExists: the bucket (or another object the request creates)
	// already exists.
	ErrExists = errors.New("clipstore: already exists")
	// ErrInvalidArgument: the request is malformed (a bad bucket name or
	// key, an unusable profile, a negative offset).
	ErrInvalidArgument = errors.New("clipstore: invalid argument")
	// ErrUnavailable: the cluster cannot serve the request now (no meta
	// leader, too few storage nodes reachable); retrying later may work.
	ErrUnavailable = errors.New("clipstore: unavailable")
	// ErrUnrecoverable: stored data was lost or failed verification and
	// could not be rebuilt. No unverified byte is ever returned instead.
	ErrUnrecoverable = errors.New("clipstore: data unrecoverable")
	// ErrClipChanged: the clip a read pinned was overwritten or deleted
	// while the read was running.
	ErrClipChanged = errors.New("clipstore: clip changed during the read")
	// ErrPrecondition: a condition of the request did not hold (a
	// generation match, a commit deadline, enough live storage nodes).
	ErrPrecondition = errors.New("clipstore: precondition failed")
)

// codeTable is the inverse of the servers' error tables: the sentinel each
// gRPC code stands for. Codes not listed wrap no sentinel.
var codeTable = map[codes.Code]error{
	codes.InvalidArgument:    ErrInvalidArgument,
	codes.OutOfRange:         ErrInvalidArgument,
	codes.NotFound:           ErrNotFound,
	codes.AlreadyExists:      ErrExists,
	codes.FailedPrecondition: ErrPrecondition,
	codes.Unavailable:        ErrUnavailable,
	codes.Aborted:            ErrUnavailable,
	codes.ResourceExhausted:  ErrUnavailable,
	codes.DeadlineExceeded:   context.DeadlineExceeded,
	codes.Canceled:           context.Canceled,
	codes.DataLoss:           ErrUnrecoverable,
}

// StatusError is an error answered by a meta member or storage node: its
// gRPC code and message. It matches (errors.Is) the sentinel of codeTable
// for its code.
type StatusError struct {
	Code    codes.Code
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the sentinel the code maps to.
func (e *StatusError) Unwrap() error { return codeTable[e.Code] }

// fromStatus converts an error returned by a gRPC call into a *StatusError
// (wrapped with what was being done). Errors that carry no gRPC status are
// returned wrapped unchanged.
func fromStatus(what string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, &StatusError{Code: st.Code(), Message: st.Message()})
}

// codeOf returns the gRPC code an error carries, or codes.Unknown.
func codeOf(err error) codes.Code {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	return codes.Unknown
}

// retryable reports whether a meta call failing with err may be tried
// again (on another member, after a pause): the member had no leader or
// could not answer in time.
func retryable(err error) bool {
	switch codeOf(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}
