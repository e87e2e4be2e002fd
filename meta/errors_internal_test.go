package meta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/clipstore/clipstore/internal/rpcerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestErrorTable pins meta's error contract: every sentinel, wrapped as
// callers wrap it, crosses gRPC with one code, one reason and its message.
func TestErrorTable(t *testing.T) {
	for _, e := range errorTable.Entries {
		if !slices.Contains(rpcerr.All, e.Reason) {
			t.Errorf("%v: reason %q is not in rpcerr.All, so the client does not know it", e.Err, e.Reason)
		}
	}
	tests := []struct {
		err    error
		code   codes.Code
		reason rpcerr.Reason
	}{
		{ErrInvalidArgument, codes.InvalidArgument, rpcerr.InvalidArgument},
		{ErrNotFound, codes.NotFound, rpcerr.NotFound},
		{ErrExists, codes.AlreadyExists, rpcerr.AlreadyExists},
		{ErrFailedPrecondition, codes.FailedPrecondition, rpcerr.FailedPrecondition},
		{ErrDeadlinePassed, codes.FailedPrecondition, rpcerr.DeadlinePassed},
		{ErrNotLeader, codes.Unavailable, rpcerr.NotLeader},
		{&NotLeaderError{Detail: "no leader elected"}, codes.Unavailable, rpcerr.NotLeader},
		{ErrOutcomeUnknown, codes.Unavailable, rpcerr.OutcomeUnknown},
		{fmt.Errorf("%w: %w", ErrOutcomeUnknown, ErrShutdown), codes.Unavailable, rpcerr.OutcomeUnknown},
		{ErrShutdown, codes.Unavailable, rpcerr.ShuttingDown},
		{ErrUnavailable, codes.Unavailable, rpcerr.Unavailable},
		{ErrStateCorrupt, codes.DataLoss, rpcerr.StateCorrupt},
		{context.DeadlineExceeded, codes.DeadlineExceeded, rpcerr.Deadline},
		{context.Canceled, codes.Canceled, rpcerr.Canceled},
	}
	for _, tt := range tests {
		t.Run(string(tt.reason), func(t *testing.T) {
			err := toStatus(fmt.Errorf("do a thing: %w", tt.err))
			st, _ := status.FromError(err)
			if st.Code() != tt.code || rpcerr.ReasonOf(err) != tt.reason || st.Message() != "do a thing: "+tt.err.Error() {
				t.Fatalf("%v: code %v, reason %q, message %q; want %v, %q", tt.err, st.Code(), rpcerr.ReasonOf(err),
					st.Message(), tt.code, tt.reason)
			}
			if st.Code() == codes.Canceled || st.Code() == codes.DeadlineExceeded {
				return // a context error never reaches the FSM, so is never remembered
			}
			// A remembered rejection replays as the same code and reason.
			again := toStatus(rejection(st.Code(), rpcerr.ReasonOf(err), st.Message()))
			if status.Code(again) != tt.code || rpcerr.ReasonOf(again) != tt.reason || status.Convert(again).Message() != st.Message() {
				t.Fatalf("replayed %v as %v", err, again)
			}
		})
	}
	if err := toStatus(errors.New("disk on fire")); status.Code(err) != codes.Internal || rpcerr.ReasonOf(err) != "" {
		t.Fatalf("an unknown error: %v, %q", err, rpcerr.ReasonOf(err))
	}
	hint := toStatus(&NotLeaderError{LeaderID: "m2", LeaderAddress: "127.0.0.1:7402", Detail: "forwarded"})
	if md := rpcerr.Info(hint).GetMetadata(); md[rpcerr.LeaderID] != "m2" || md[rpcerr.LeaderAddress] != "127.0.0.1:7402" {
		t.Fatalf("leader hint: %v", rpcerr.Info(hint))
	}
}
