package meta

import (
	"errors"
	"fmt"

	"github.com/clipstore/clipstore/internal/rpcerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors of the meta service. Each maps to one gRPC code and one
// machine-readable reason (errorTable), which the client maps back.
var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrExists             = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrDeadlinePassed: a commit or shard update came after the commit
	// deadline its shards carry (they may be collected): write again.
	ErrDeadlinePassed = fmt.Errorf("%w: commit deadline passed", ErrFailedPrecondition)
	// ErrNotLeader: this member is not the leader and cannot reach it. A
	// *NotLeaderError carries the leader it knows of.
	ErrNotLeader = errors.New("not the leader")
	// ErrOutcomeUnknown: a write was proposed but its fate is not known (a
	// timeout or a lost leadership): it may or may not have been committed.
	// Retry with the same request id to learn the outcome.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrUnavailable: the member cannot serve the request now; retry.
	ErrUnavailable = errors.New("unavailable")
	// ErrShutdown: the member is shutting down.
	ErrShutdown = errors.New("meta member is shutting down")
	// ErrPermissionDenied: the caller may not do this.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnauthenticated: the call's signature, or its access key, was
	// refused.
	ErrUnauthenticated = errors.New("unauthenticated")

	errAlreadyApplied = errors.New("entry already applied")
)

// NotLeaderError is ErrNotLeader with the leader this member knows of, if
// any: the answer's ErrorInfo carries it, so that callers go to the leader
// directly.
type NotLeaderError struct {
	LeaderID, LeaderAddress string // empty when unknown
	Detail                  string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return fmt.Sprintf("%v: %s", ErrNotLeader, e.Detail)
	}
	return fmt.Sprintf("%v: %s (leader %s at %s)", ErrNotLeader, e.Detail, e.LeaderID, e.LeaderAddress)
}

func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// ErrorReason keeps the table's reason (NOT_LEADER).
func (e *NotLeaderError) ErrorReason() rpcerr.Reason { return "" }

// ErrorMetadata is the leader hint.
func (e *NotLeaderError) ErrorMetadata() map[string]string {
	if e.LeaderID == "" {
		return nil
	}
	return map[string]string{rpcerr.LeaderID: e.LeaderID, rpcerr.LeaderAddress: e.LeaderAddress}
}

// errorTable is the one translation from meta's errors to gRPC codes and
// reasons; client.codeTable and the storage node's meta caller hold its
// inverse. Refinements come before what they refine.
var errorTable = &rpcerr.Table{Domain: rpcerr.MetaDomain, Entries: []rpcerr.Entry{
	{Err: ErrInvalidArgument, Code: codes.InvalidArgument, Reason: rpcerr.InvalidArgument},
	{Err: ErrNotFound, Code: codes.NotFound, Reason: rpcerr.NotFound},
	{Err: ErrExists, Code: codes.AlreadyExists, Reason: rpcerr.AlreadyExists},
	{Err: ErrDeadlinePassed, Code: codes.FailedPrecondition, Reason: rpcerr.DeadlinePassed},
	{Err: ErrFailedPrecondition, Code: codes.FailedPrecondition, Reason: rpcerr.FailedPrecondition},
	{Err: ErrNotLeader, Code: codes.Unavailable, Reason: rpcerr.NotLeader},
	// Before ErrShutdown: a proposal cut by shutdown may have committed.
	{Err: ErrOutcomeUnknown, Code: codes.Unavailable, Reason: rpcerr.OutcomeUnknown},
	{Err: ErrShutdown, Code: codes.Unavailable, Reason: rpcerr.ShuttingDown},
	{Err: ErrUnavailable, Code: codes.Unavailable, Reason: rpcerr.Unavailable},
	{Err: ErrStateCorrupt, Code: codes.DataLoss, Reason: rpcerr.StateCorrupt},
	{Err: ErrPermissionDenied, Code: codes.PermissionDenied, Reason: rpcerr.PermissionDenied},
	{Err: ErrUnauthenticated, Code: codes.Unauthenticated, Reason: rpcerr.Unauthenticated},
}}

// codeOf returns the gRPC code for err.
func codeOf(err error) codes.Code { return errorTable.Code(err) }

// toStatus converts an error into a gRPC status error with its message and
// reason.
func toStatus(err error) error { return errorTable.Status(err) }

// reasonOf returns the reason toStatus gives err ("" for none).
func reasonOf(err error) rpcerr.Reason {
	if e, ok := errorTable.Lookup(err); ok {
		return e.Reason
	}
	return ""
}

// rejection rebuilds a remembered rejection (a request id's first outcome)
// as the error it was: its message, and the sentinel of its reason (of its
// code, for records written before reasons were kept), so that a replayed
// answer carries the same code and reason as the first.
func rejection(code codes.Code, reason rpcerr.Reason, msg string) error {
	for _, e := range errorTable.Entries {
		if e.Reason == reason {
			return &replayedError{msg: msg, err: e.Err}
		}
	}
	for _, e := range errorTable.Entries {
		if e.Code == code && reason == "" {
			return &replayedError{msg: msg, err: e.Err}
		}
	}
	return status.Error(code, msg)
}

// replayedError is a remembered rejection: the first answer's message and
// sentinel.
type replayedError struct {
	msg string
	err error
}

func (e *replayedError) Error() string { return e.msg }
func (e *replayedError) Unwrap() error { return e.err }
