package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/clipstore/clipstore/internal/rpcerr"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// statusWith is an answer as meta or a storage node sends it.
func statusWith(code codes.Code, reason rpcerr.Reason, md map[string]string) error {
	st, err := status.New(code, "the server's message").WithDetails(&errdetails.ErrorInfo{
		Reason: string(reason), Domain: rpcerr.MetaDomain, Metadata: md})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// TestErrorContract pins the inverse of the servers' error tables: each
// reason maps to the client errors a caller matches, and only to those.
func TestErrorContract(t *testing.T) {
	for _, r := range rpcerr.All {
		if _, ok := reasonTable[r]; !ok {
			t.Errorf("reason %s has no client error", r)
		}
	}
	sentinels := []error{ErrNotFound, ErrExists, ErrInvalidArgument, ErrUnavailable, ErrOutcomeUnknown, ErrUnrecoverable,
		ErrCorrupt, ErrClipChanged, ErrPrecondition, ErrDeadlinePassed, context.DeadlineExceeded, context.Canceled}
	tests := []struct {
		code   codes.Code
		reason rpcerr.Reason
		want   []error
	}{
		{codes.Unavailable, rpcerr.OutcomeUnknown, []error{ErrOutcomeUnknown}},
		{codes.Unavailable, rpcerr.NotLeader, []error{ErrUnavailable}},
		{codes.Unavailable, rpcerr.ShuttingDown, []error{ErrUnavailable}},
		{codes.FailedPrecondition, rpcerr.DeadlinePassed, []error{ErrDeadlinePassed, ErrPrecondition}},
		{codes.FailedPrecondition, rpcerr.FailedPrecondition, []error{ErrPrecondition}},
		{codes.DataLoss, rpcerr.CorruptPiece, []error{ErrCorrupt}},
		{codes.DataLoss, rpcerr.StateCorrupt, []error{ErrUnrecoverable}},
		{codes.NotFound, rpcerr.NotFound, []error{ErrNotFound}},
		{codes.DeadlineExceeded, rpcerr.Timeout, []error{context.DeadlineExceeded}},
		// Without a reason (an older server, a transport error): the code.
		{codes.DataLoss, "", []error{ErrUnrecoverable}},
		{codes.Unavailable, "", []error{ErrUnavailable}},
		{codes.Unavailable, "A_REASON_FROM_THE_FUTURE", []error{ErrUnavailable}},
		{codes.Internal, "", nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%s", tt.code, tt.reason), func(t *testing.T) {
			err := fromStatus("call", statusWith(tt.code, tt.reason, map[string]string{"k": "v"}))
			for _, s := range sentinels {
				if got, want := errors.Is(err, s), slices.Contains(tt.want, s); got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, want)
				}
			}
			var se *StatusError
			if !errors.As(err, &se) || se.Code != tt.code || se.Reason != string(tt.reason) || se.Metadata["k"] != "v" {
				t.Errorf("StatusError %+v", se)
			}
		})
	}
}
