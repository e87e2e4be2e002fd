package client

import (
	"bytes"
	"testing"

	"github.com/clipstore/clipstore/erasure"
)

// TestBlockRefPins: a block's slot among those in flight comes back when
// every shard writer is done with it, even while gRPC still holds a piece
// handed to it without a copy; the block's memory is reused only once
// that piece is given back too, and giving it back twice changes nothing.
func TestBlockRefPins(t *testing.T) {
	code, err := erasure.New(4, 2, erasure.WithBlockSize(1<<20), erasure.WithBlockCache(1))
	if err != nil {
		t.Fatal(err)
	}
	next := func() *erasure.Block {
		b, err := code.NewEncoder(bytes.NewReader(make([]byte, 1<<20))).Next()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := next()
	tokens := make(chan struct{}, 1)
	tokens <- struct{}{}
	ref := newBlockRef(b, 6, tokens)
	pin := ref.pin() // gRPC took one piece
	for range 6 {
		ref.done()
	}
	if len(tokens) != 0 {
		t.Fatal("the slot was not given back when every writer was done")
	}
	other := next()
	defer other.Release()
	if other == b {
		t.Fatal("the block was reused while gRPC still held one of its pieces")
	}
	pin.Put(nil) // gRPC wrote the piece out
	pin.release()
	if got := ref.refs.Load(); got != 0 {
		t.Fatalf("%d references left, want 0", got)
	}
	if again := next(); again != b {
		t.Fatal("the block did not go back to the Code once the piece was given back")
	}
}
