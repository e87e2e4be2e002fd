package server

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/clipstore/clipstore/internal/rpcerr"
	"google.golang.org/grpc/codes"
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
	// ErrDiskFormat: a data directory was written in a layout this release
	// does not read (or its identity file is damaged); it is not served.
	ErrDiskFormat = errors.New("unusable disk format")
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

// ErrorReason refines the table's reason (CORRUPT) to CORRUPT_PIECE.
func (e *CorruptPieceError) ErrorReason() rpcerr.Reason { return rpcerr.CorruptPiece }

// ErrorMetadata names the piece, so that a caller can act without parsing
// text.
func (e *CorruptPieceError) ErrorMetadata() map[string]string {
	return map[string]string{rpcerr.ShardID: e.Shard.String(), rpcerr.Block: strconv.FormatUint(e.Block, 10)}
}

// errorTable is the one translation from storage errors to gRPC codes and
// reasons; the client holds its inverse.
var errorTable = &rpcerr.Table{Domain: rpcerr.StorageDomain, Entries: []rpcerr.Entry{
	{Err: ErrInvalidArgument, Code: codes.InvalidArgument, Reason: rpcerr.InvalidArgument},
	{Err: ErrNotFound, Code: codes.NotFound, Reason: rpcerr.NotFound},
	{Err: ErrExists, Code: codes.AlreadyExists, Reason: rpcerr.AlreadyExists},
	{Err: ErrWriteInProgress, Code: codes.Aborted, Reason: rpcerr.WriteInProgress},
	{Err: ErrOutOfRange, Code: codes.OutOfRange, Reason: rpcerr.OutOfRange},
	{Err: ErrCorrupt, Code: codes.DataLoss, Reason: rpcerr.Corrupt},
	{Err: ErrNoSpace, Code: codes.ResourceExhausted, Reason: rpcerr.NoSpace},
	{Err: ErrTimeout, Code: codes.DeadlineExceeded, Reason: rpcerr.Timeout},
	{Err: ErrClosed, Code: codes.Unavailable, Reason: rpcerr.ShuttingDown},
}}

// toStatus converts an error from the store into a gRPC status error whose
// message says what was wrong and whose ErrorInfo names its reason; a
// corrupt piece's names the shard id and block number.
func toStatus(err error) error { return errorTable.Status(err) }
