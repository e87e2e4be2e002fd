package rpcerr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	errBase   = errors.New("base")
	errRefine = fmt.Errorf("%w: refined", errBase)
)

type hinted struct{ error }

func (h hinted) Unwrap() error                  { return h.error }
func (hinted) ErrorReason() Reason              { return "HINTED" }
func (hinted) ErrorMetadata() map[string]string { return map[string]string{"where": "there"} }

func TestTable(t *testing.T) {
	tab := &Table{Domain: "test.clipstore", Entries: []Entry{
		{errRefine, codes.FailedPrecondition, DeadlinePassed},
		{errBase, codes.FailedPrecondition, FailedPrecondition},
	}}
	tests := []struct {
		err    error
		code   codes.Code
		reason Reason
	}{
		{fmt.Errorf("x: %w", errRefine), codes.FailedPrecondition, DeadlinePassed}, // the refinement wins
		{fmt.Errorf("x: %w", errBase), codes.FailedPrecondition, FailedPrecondition},
		{fmt.Errorf("x: %w", context.Canceled), codes.Canceled, Canceled},
		{hinted{errBase}, codes.FailedPrecondition, "HINTED"},
		{errors.New("unknown"), codes.Internal, ""},
	}
	for _, tt := range tests {
		err := tab.Status(tt.err)
		if status.Code(err) != tt.code || ReasonOf(err) != tt.reason || status.Convert(err).Message() != tt.err.Error() {
			t.Errorf("%v: %v, %q; want %v, %q", tt.err, err, ReasonOf(err), tt.code, tt.reason)
		}
		if tab.Code(tt.err) != tt.code {
			t.Errorf("Code(%v) = %v, want %v", tt.err, tab.Code(tt.err), tt.code)
		}
	}
	if md := Info(tab.Status(hinted{errBase})).GetMetadata(); md["where"] != "there" {
		t.Errorf("metadata %v", md)
	}
	relayed := status.Error(codes.NotFound, "from another server")
	if tab.Status(relayed) != relayed || Info(relayed) != nil || ReasonOf(errors.New("plain")) != "" || tab.Status(nil) != nil {
		t.Error("a relayed status, a plain error or nil changed on the way")
	}
}
