package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors of the storage node. Each maps to one gRPC code in
// toStatus; wrap them with the details a caller needs.
var (
	// ErrInvalidArgument: the request is malformed (bad id, bad header, a
	// piece that disagrees with the header, a truncated stream).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: no shard with that id on this node.
	ErrNotFound = errors.New("shard not found")
	// ErrExists: a shard with that id exists with different content.
	ErrExists = errors.New("shard exists with different content")
	// ErrWriteInProgress: another write of the same shard id is running.
	ErrWriteInProgress = errors.New("a write of this shard is in progress")
	// ErrOutOfRange: a block range past the end of the shard.
	ErrOutOfRange = errors.New("out of range")
	// ErrCorrupt: stored bytes failed verification.
	ErrCorrupt = errors.New("corrupt")
	// ErrNoSpace: the disk is full.
	ErrNoSpace = errors.New("no space left on disk")
	// ErrTimeout: a writer went silent for longer than the idle timeout.
	ErrTimeout = errors.New("timed out")
	// ErrClosed: the store is shutting down.
	ErrClosed = errors.New("storage node is shutting down")
)

// CorruptPieceError reports a piece that failed verification on read.
type CorruptPieceError struct {
	Shard ShardID
	Block uint64
	Err   error
}

func (e *CorruptPieceError) Error() string {
	return fmt.Sprintf("shard %s block %d: %v", e.Shard, e.Block, e.Err)
}

func (e *CorruptPieceError) Unwrap() error { return e.Err }

// errorDomain is the domain of the ErrorInfo details attached to statuses.
const errorDomain = "storage.clipstore"

// codeTable is the one translation from storage errors to gRPC codes; the
// client holds its inverse.
var codeTable = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrNotFound, codes.NotFound},
	{ErrExists, codes.AlreadyExists},
	{ErrWriteInProgress, codes.Aborted},
	{ErrOutOfRange, codes.OutOfRange},
	{ErrCorrupt, codes.DataLoss},
	{ErrNoSpace, codes.ResourceExhausted},
	{ErrTimeout, codes.DeadlineExceeded},
	{ErrClosed, codes.Unavailable},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// toStatus converts an error from the store into a gRPC status error whose
// message says what was wrong. A corrupt piece carries an ErrorInfo with the
// shard id and block number so that a caller can act without parsing text.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	for _, e := range codeTable {
		if errors.Is(err, e.err) {
			code = e.code
			break
		}
	}
	st := status.New(code, err.Error())
	var ce *CorruptPieceError
	if errors.As(err, &ce) {
		info := &errdetails.ErrorInfo{
			Reason: "CORRUPT_PIECE",
			Domain: errorDomain,
			Metadata: map[string]string{
				"shard_id": ce.Shard.String(),
				"block":    strconv.FormatUint(ce.Block, 10),
			},
		}
		if d, derr := st.WithDetails(info); derr == nil {
			st = d
		}
	}
	return st.Err()
}
