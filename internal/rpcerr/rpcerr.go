// Package rpcerr is clipstore's error contract on the wire. A meta member or
// a storage node answers an error with the gRPC code of its sentinel and a
// google.rpc.ErrorInfo detail whose Reason names the sentinel (with its
// Domain, "meta.clipstore" or "storage.clipstore", and metadata such as a
// leader hint or the block of a corrupt piece), so that a caller acts on
// what happened without parsing text: the client maps each reason back to
// one of its exported errors, and a storage node does the same with meta's
// answers. Each server package keeps its own table (a Table) from sentinel
// to code and reason; the reasons are the shared vocabulary, defined here.
package rpcerr

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Reason is the machine-readable name of an error on the wire (the Reason
// of its ErrorInfo detail). Reasons are only ever added.
type Reason string

// The reasons meta members and storage nodes send.
const (
	InvalidArgument    Reason = "INVALID_ARGUMENT"
	NotFound           Reason = "NOT_FOUND"
	AlreadyExists      Reason = "ALREADY_EXISTS"
	FailedPrecondition Reason = "FAILED_PRECONDITION"
	// DeadlinePassed: a commit came after the deadline its shards carry;
	// the data must be written again.
	DeadlinePassed Reason = "DEADLINE_PASSED"
	// NotLeader: the member could not reach a leader to answer; the
	// metadata may name the leader (LeaderID, LeaderAddress).
	NotLeader Reason = "NOT_LEADER"
	// OutcomeUnknown: a write was proposed but whether it committed is not
	// known; retrying with the same request id tells.
	OutcomeUnknown Reason = "OUTCOME_UNKNOWN"
	Unavailable    Reason = "UNAVAILABLE"
	ShuttingDown   Reason = "SHUTTING_DOWN"
	// StateCorrupt: a meta member's state failed its checksum.
	StateCorrupt Reason = "STATE_CORRUPT"
	// Corrupt: stored shard bytes failed verification; CorruptPiece names
	// the piece (metadata ShardID, Block).
	Corrupt      Reason = "CORRUPT"
	CorruptPiece Reason = "CORRUPT_PIECE"
	OutOfRange   Reason = "OUT_OF_RANGE"
	NoSpace      Reason = "NO_SPACE"
	// WriteInProgress: another write of the same shard id is running.
	WriteInProgress Reason = "WRITE_IN_PROGRESS"
	// Timeout: a stream went silent for longer than the server waits.
	Timeout  Reason = "TIMEOUT"
	Canceled Reason = "CANCELED"
	Deadline Reason = "DEADLINE_EXCEEDED"
	// PermissionDenied: the caller may not do this (a signing key asked for
	// without the cluster secret).
	PermissionDenied Reason = "PERMISSION_DENIED"
	// Unauthenticated: the call's signature or its key was refused.
	Unauthenticated Reason = "UNAUTHENTICATED"
)

// All lists every reason, so that tests can check that both ends of the
// contract know each one.
var All = []Reason{InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, DeadlinePassed, NotLeader,
	OutcomeUnknown, Unavailable, ShuttingDown, StateCorrupt, Corrupt, CorruptPiece, OutOfRange, NoSpace,
	WriteInProgress, Timeout, Canceled, Deadline, PermissionDenied, Unauthenticated}

// Metadata keys of the ErrorInfo details.
const (
	LeaderID      = "leader_id"
	LeaderAddress = "leader_address"
	ShardID       = "shard_id"
	Block         = "block"
)

// Domains of the two servers.
const (
	MetaDomain    = "meta.clipstore"
	StorageDomain = "storage.clipstore"
)

// Entry maps a sentinel error to its code and reason.
type Entry struct {
	Err    error
	Code   codes.Code
	Reason Reason
}

// Table is a server's translation from its errors to gRPC statuses: the
// first entry whose Err matches (errors.Is) decides; list refinements
// before what they refine. Context errors are matched after the table.
type Table struct {
	Domain  string
	Entries []Entry
}

// Detailed is an error that carries metadata for its ErrorInfo (a leader
// hint, the block of a corrupt piece), and may refine its reason.
type Detailed interface {
	error
	ErrorReason() Reason // "" keeps the table's
	ErrorMetadata() map[string]string
}

var contextEntries = []Entry{
	{context.Canceled, codes.Canceled, Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded, Deadline},
}

// Lookup returns the entry err matches, and false if none does.
func (t *Table) Lookup(err error) (Entry, bool) {
	for _, entries := range [][]Entry{t.Entries, contextEntries} {
		for _, e := range entries {
			if errors.Is(err, e.Err) {
				return e, true
			}
		}
	}
	return Entry{}, false
}

// Code returns the gRPC code for err: OK for nil, the code of a status
// error, the table's code, or Internal.
func (t *Table) Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	if e, ok := t.Lookup(err); ok {
		return e.Code
	}
	return codes.Internal
}

// Status converts err into a gRPC status error with err's message, its
// table code and an ErrorInfo detail naming its reason. A status error
// (one relayed from another server) passes unchanged; an error the table
// does not know is Internal, without a reason.
func (t *Table) Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	e, ok := t.Lookup(err)
	if !ok {
		return status.Error(codes.Internal, err.Error())
	}
	info := &errdetails.ErrorInfo{Reason: string(e.Reason), Domain: t.Domain}
	var d Detailed
	if errors.As(err, &d) {
		if r := d.ErrorReason(); r != "" {
			info.Reason = string(r)
		}
		info.Metadata = d.ErrorMetadata()
	}
	st := status.New(e.Code, err.Error())
	if withInfo, derr := st.WithDetails(info); derr == nil {
		st = withInfo
	}
	return st.Err()
}

// Info returns the ErrorInfo of a status error, or nil when it has none
// (an answer from an older server, or an error that never crossed gRPC).
func Info(err error) *errdetails.ErrorInfo {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// ReasonOf returns the reason a status error carries, or "" when it
// carries none.
func ReasonOf(err error) Reason {
	if info := Info(err); info != nil {
		return Reason(info.Reason)
	}
	return ""
}
