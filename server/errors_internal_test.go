package server

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/clipstore/clipstore/internal/rpcerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestErrorTable pins the storage node's error contract: every sentinel
// crosses gRPC with one code and one reason the client knows, and a corrupt
// piece names its shard and block.
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
		{ErrWriteInProgress, codes.Aborted, rpcerr.WriteInProgress},
		{ErrOutOfRange, codes.OutOfRange, rpcerr.OutOfRange},
		{ErrCorrupt, codes.DataLoss, rpcerr.Corrupt},
		{ErrNoSpace, codes.ResourceExhausted, rpcerr.NoSpace},
		{ErrTimeout, codes.DeadlineExceeded, rpcerr.Timeout},
		{ErrClosed, codes.Unavailable, rpcerr.ShuttingDown},
		{&CorruptPieceError{Shard: ShardID{1}, Block: 7, Err: ErrCorrupt}, codes.DataLoss, rpcerr.CorruptPiece},
	}
	for _, tt := range tests {
		err := toStatus(fmt.Errorf("read: %w", tt.err))
		if status.Code(err) != tt.code || rpcerr.ReasonOf(err) != tt.reason {
			t.Errorf("%v: %v, reason %q; want %v, %q", tt.err, status.Code(err), rpcerr.ReasonOf(err), tt.code, tt.reason)
		}
	}
	info := rpcerr.Info(toStatus(&CorruptPieceError{Shard: ShardID{1}, Block: 7, Err: ErrCorrupt}))
	if info.Metadata[rpcerr.Block] != "7" || info.Metadata[rpcerr.ShardID] != (ShardID{1}).String() || info.Domain != rpcerr.StorageDomain {
		t.Errorf("corrupt piece details: %v", info)
	}
	if err := toStatus(errors.New("disk on fire")); status.Code(err) != codes.Internal {
		t.Errorf("an unknown error: %v", err)
	}
}
