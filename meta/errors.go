package meta

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors of the meta service; toStatus maps each to one gRPC code.
var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrExists             = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrNotLeader: this member is not the leader and cannot reach it.
	ErrNotLeader = errors.New("not the leader")
	// ErrOutcomeUnknown: a write was proposed but its fate is not known (a
	// timeout or a lost leadership): it may or may not have been committed.
	// Retry with the same request id to learn the outcome.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrUnavailable: the member cannot serve the request now; retry.
	ErrUnavailable = errors.New("unavailable")
	// ErrShutdown: the member is shutting down.
	ErrShutdown = errors.New("meta member is shutting down")

	errAlreadyApplied = errors.New("entry already applied")
)

var codeTable = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrNotFound, codes.NotFound},
	{ErrExists, codes.AlreadyExists},
	{ErrFailedPrecondition, codes.FailedPrecondition},
	{ErrNotLeader, codes.Unavailable},
	{ErrOutcomeUnknown, codes.Unavailable},
	{ErrShutdown, codes.Unavailable},
	{ErrUnavailable, codes.Unavailable},
	{ErrStateCorrupt, codes.DataLoss},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// codeOf returns the gRPC code for err.
func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	for _, e := range codeTable {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return codes.Internal
}

// toStatus converts an error into a gRPC status error with its message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codeOf(err), err.Error())
}
