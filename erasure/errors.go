package erasure

import (
	"errors"
	"fmt"
	"slices"
)

var (
	// ErrInvalidParams is returned for a code, clip size or argument the
	// codec cannot work with; the wrapping error names the parameter.
	ErrInvalidParams = errors.New("erasure: invalid parameters")

	// ErrRange is returned when a byte range falls outside the clip.
	ErrRange = errors.New("erasure: range out of bounds")

	// ErrCorrupt marks a piece whose bytes or trailer failed verification.
	// It is wrapped in a *PieceError naming the shard index and block.
	ErrCorrupt = errors.New("erasure: corrupt piece")

	// ErrUnrecoverable is returned when a block has fewer than k healthy
	// pieces (or its healthy pieces contradict each other), so its bytes
	// cannot be produced. No unverified byte is ever returned instead.
	ErrUnrecoverable = errors.New("erasure: block unrecoverable")
)

// Reasons wrapped in a PieceError; all but I/O failures wrap ErrCorrupt.
var (
	errChecksum = fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	errUnitLen  = fmt.Errorf("%w: wrong unit length", ErrCorrupt)
	errConflict = fmt.Errorf("%w: trailer disagrees with the block's other pieces", ErrCorrupt)
)

// PieceError reports a piece that could not be used: Err wraps ErrCorrupt
// when its bytes failed verification, or the I/O error of the shard reader
// that failed to deliver it (a short read wraps io.ErrUnexpectedEOF).
type PieceError struct {
	Index int   // shard index
	Block int64 // block number
	Err   error
}

func (e *PieceError) Error() string {
	return fmt.Sprintf("erasure: shard %d block %d: %v", e.Index, e.Block, e.Err)
}

func (e *PieceError) Unwrap() error { return e.Err }

// Report is what a decode learned about the shards it read, whether or not
// it succeeded: every piece it could not use (in the order met) and how many
// blocks needed reconstruction. A shard reader that fails is reported once,
// at the block where it failed, and not read again.
type Report struct {
	Faults   []*PieceError
	Degraded int64 // blocks decoded by reconstruction
}

// Corrupt returns the distinct shard indices that had a piece failing
// verification (ErrCorrupt), ascending: the shards to report to meta.
func (r *Report) Corrupt() []int {
	var idx []int
	for _, f := range r.Faults {
		if errors.Is(f.Err, ErrCorrupt) && !slices.Contains(idx, f.Index) {
			idx = append(idx, f.Index)
		}
	}
	slices.Sort(idx)
	return idx
}

func (r *Report) fault(index int, block int64, err error) {
	r.Faults = append(r.Faults, &PieceError{Index: index, Block: block, Err: err})
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidParams}, args...)...)
}
