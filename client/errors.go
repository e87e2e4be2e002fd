package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/clipstore/clipstore/internal/rpcerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors a caller can match with errors.Is. Errors from the cluster wrap one
// or more of them (see reasonTable) together with the server's message.
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
	// ErrOutcomeUnknown: a write reached meta but whether it committed is
	// not known (a leader lost its leadership or stopped while the write
	// was in flight, or meta did not answer in time). The client retries
	// such a write with the same request id, which tells; this error means
	// its retries ran out first. Read the clip to learn whether it landed.
	ErrOutcomeUnknown = errors.New("clipstore: outcome unknown")
	// ErrUnrecoverable: stored data was lost or failed verification and
	// could not be rebuilt. No unverified byte is ever returned instead.
	ErrUnrecoverable = errors.New("clipstore: data unrecoverable")
	// ErrCorrupt: a storage node found stored shard bytes that failed
	// verification. Reads work around it (and report the shard); it
	// surfaces from calls on one shard, such as fsck's.
	ErrCorrupt = errors.New("clipstore: corrupt shard")
	// ErrClipChanged: the clip a read pinned was overwritten or deleted
	// while the read was running.
	ErrClipChanged = errors.New("clipstore: clip changed during the read")
	// ErrPrecondition: a condition of the request did not hold (a
	// generation match, a commit deadline, enough live storage nodes).
	ErrPrecondition = errors.New("clipstore: precondition failed")
	// ErrDeadlinePassed: an upload took longer than its commit deadline
	// (meta's --max-upload-duration); nothing was committed. It is also
	// ErrPrecondition.
	ErrDeadlinePassed = errors.New("clipstore: commit deadline passed")
	// ErrPermissionDenied: the server refused the caller: a call its key
	// may not make, a signature or key it does not take, a certificate
	// without the call's role.
	ErrPermissionDenied = errors.New("clipstore: permission denied")
)

// reasonTable is the inverse of the servers' error tables (meta's and the
// storage node's errorTable): the errors each reason of an answer stands
// for.
var reasonTable = map[rpcerr.Reason][]error{
	rpcerr.InvalidArgument:    {ErrInvalidArgument},
	rpcerr.OutOfRange:         {ErrInvalidArgument},
	rpcerr.NotFound:           {ErrNotFound},
	rpcerr.AlreadyExists:      {ErrExists},
	rpcerr.FailedPrecondition: {ErrPrecondition},
	rpcerr.DeadlinePassed:     {ErrDeadlinePassed, ErrPrecondition},
	rpcerr.NotLeader:          {ErrUnavailable},
	rpcerr.Unavailable:        {ErrUnavailable},
	rpcerr.ShuttingDown:       {ErrUnavailable},
	rpcerr.WriteInProgress:    {ErrUnavailable},
	rpcerr.NoSpace:            {ErrUnavailable},
	rpcerr.OutcomeUnknown:     {ErrOutcomeUnknown},
	rpcerr.StateCorrupt:       {ErrUnrecoverable},
	rpcerr.Corrupt:            {ErrCorrupt},
	rpcerr.CorruptPiece:       {ErrCorrupt},
	rpcerr.Timeout:            {context.DeadlineExceeded},
	rpcerr.Deadline:           {context.DeadlineExceeded},
	rpcerr.PermissionDenied:   {ErrPermissionDenied},
	rpcerr.Unauthenticated:    {ErrPermissionDenied},
	rpcerr.Canceled:           {context.Canceled},
}

// codeTable gives the error of an answer that names no reason this client
// knows (a transport failure, a newer server's new reason).
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
	codes.PermissionDenied:   ErrPermissionDenied,
	codes.Unauthenticated:    ErrPermissionDenied,
}

// StatusError is an error answered by a meta member or storage node: its
// gRPC code, message and, from servers that send one, the reason and
// metadata of its ErrorInfo. It matches (errors.Is) the errors of its
// reason in reasonTable, or of its code when the reason is unknown.
type StatusError struct {
	Code    codes.Code
	Message string
	// Reason is the machine-readable cause ("NOT_FOUND", "OUTCOME_UNKNOWN",
	// "CORRUPT_PIECE", ...); empty when the server sent none.
	Reason string
	// Metadata details the reason: the leader a member knows of
	// ("leader_id", "leader_address"), the block of a corrupt piece
	// ("shard_id", "block").
	Metadata map[string]string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the errors the reason (or, without one, the code) stands
// for.
func (e *StatusError) Unwrap() []error {
	if errs, ok := reasonTable[rpcerr.Reason(e.Reason)]; ok {
		return errs
	}
	if err := codeTable[e.Code]; err != nil {
		return []error{err}
	}
	return nil
}

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
	se := &StatusError{Code: st.Code(), Message: st.Message()}
	if info := rpcerr.Info(err); info != nil {
		se.Reason, se.Metadata = info.Reason, info.Metadata
	}
	return fmt.Errorf("%s: %w", what, se)
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
