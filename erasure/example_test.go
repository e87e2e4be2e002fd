package erasure_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/clipstore/clipstore/erasure"
)

func ExampleNew() {
	c, err := erasure.New(4, 2, erasure.WithBlockSize(64<<10))
	if err != nil {
		log.Fatal(err)
	}
	l, err := c.Layout(1 << 20) // a 1 MiB clip
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("shards:", c.Shards(), "blocks:", l.Blocks(), "piece:", l.PieceLen(0), "shard bytes:", l.ShardLen())

	_, err = erasure.New(0, 2)
	fmt.Println(err)
	// Output:
	// shards: 6 blocks: 16 piece: 16384 shard bytes: 262592
	// erasure: invalid parameters: data shards k=0, want at least 1
}

// encodeExample encodes clip into six in-memory shard streams.
func encodeExample(c *erasure.Code, clip string) ([]bytes.Buffer, erasure.EncodeResult) {
	shards := make([]bytes.Buffer, c.Shards())
	w := make([]io.Writer, len(shards))
	for i := range shards {
		w[i] = &shards[i]
	}
	res, err := c.Encode(strings.NewReader(clip), w)
	if err != nil {
		log.Fatal(err)
	}
	return shards, res
}

func ExampleCode_Encode() {
	c, _ := erasure.New(4, 2, erasure.WithBlockSize(16))
	_, res := encodeExample(c, "a clip of forty bytes from a camera ....")
	fmt.Printf("size %d, %d blocks, %d bytes per shard, checksum %08x\n", res.Size, res.Blocks, res.ShardLen, res.Checksum)
	fmt.Println(res.Checksum == erasure.CRC32C([]byte("a clip of forty bytes from a camera ....")))
	// Output:
	// size 40, 3 blocks, 94 bytes per shard, checksum 2816b7c9
	// true
}

func ExampleCode_Decode() {
	c, _ := erasure.New(4, 2, erasure.WithBlockSize(16))
	clip := "a clip of forty bytes from a camera ...."
	shards, _ := encodeExample(c, clip)

	// Shard 1 is lost and a byte of shard 3 has rotted.
	shards[3].Bytes()[5] ^= 0xff
	r := make([]io.Reader, len(shards))
	for i := range shards {
		r[i] = bytes.NewReader(shards[i].Bytes())
	}
	r[1] = nil

	var out strings.Builder
	rep, err := c.Decode(&out, r, int64(len(clip)))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.String())
	fmt.Println("corrupt shards:", rep.Corrupt(), "first fault:", rep.Faults[0])
	// Output:
	// a clip of forty bytes from a camera ....
	// corrupt shards: [3] first fault: erasure: shard 3 block 0: erasure: corrupt piece: checksum mismatch
}

func ExampleCode_DecodeRange() {
	c, _ := erasure.New(4, 2, erasure.WithBlockSize(16))
	clip := "a clip of forty bytes from a camera ...."
	shards, _ := encodeExample(c, clip)
	r := make([]io.ReaderAt, len(shards))
	for i := range shards {
		r[i] = bytes.NewReader(shards[i].Bytes())
	}
	r[0], r[5] = nil, nil // two shards lost

	var out strings.Builder
	if _, err := c.DecodeRange(&out, r, int64(len(clip)), 10, 11); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", out.String())
	// Output:
	// "forty bytes"
}

func ExampleLayout_Extents() {
	c, _ := erasure.New(4, 2, erasure.WithBlockSize(16))
	l, _ := c.Layout(40)
	ext, _ := l.Extents(10, 11)
	for _, e := range ext {
		fmt.Printf("block %d: unit at %d (%d bytes), data pieces %d..%d\n",
			e.Block, l.UnitOffset(e.Block), l.UnitLen(e.Block), e.First, e.Last)
		for i := e.First; i <= e.Last; i++ {
			lo, hi := e.Span(i)
			fmt.Printf("  piece %d bytes [%d, %d)\n", i, lo, hi)
		}
	}
	// Output:
	// block 0: unit at 0 (32 bytes), data pieces 2..3
	//   piece 2 bytes [2, 4)
	//   piece 3 bytes [0, 4)
	// block 1: unit at 32 (32 bytes), data pieces 0..1
	//   piece 0 bytes [0, 4)
	//   piece 1 bytes [0, 1)
}

func ExampleEncoder() {
	c, _ := erasure.New(2, 1, erasure.WithBlockSize(8))
	e := c.NewEncoder(strings.NewReader("twenty bytes of clip"))
	for {
		b, err := e.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		// A writer sends b.Pieces[i] and b.Trailer(i) to the node of shard i
		// (in parallel, a few blocks in flight), then releases the block.
		fmt.Printf("block %d: %q -> pieces %q %q, parity %d bytes\n", b.Num, b.Bytes(), b.Pieces[0], b.Pieces[1], len(b.Pieces[2]))
		b.Release()
	}
	fmt.Println(e.Result().Size, "bytes")
	// Output:
	// block 0: "twenty b" -> pieces "twen" "ty b", parity 4 bytes
	// block 1: "ytes of " -> pieces "ytes" " of ", parity 4 bytes
	// block 2: "clip" -> pieces "cl" "ip", parity 2 bytes
	// 20 bytes
}

// A reader that fetches units itself (say, from k+m storage nodes over
// gRPC) decodes them block by block; it fetches parity only when a data
// unit is missing or fails verification.
func ExampleBlockDecoder() {
	c, _ := erasure.New(4, 2, erasure.WithBlockSize(16))
	clip := "a clip of forty bytes from a camera ...."
	shards, _ := encodeExample(c, clip)
	shards[2].Bytes()[40] ^= 1 // rot in unit 1 of shard 2

	l, _ := c.Layout(int64(len(clip)))
	fetch := func(b int64, i int) []byte { // stands in for a ranged read of a node
		off := l.UnitOffset(b)
		return shards[i].Bytes()[off : off+int64(l.UnitLen(b))]
	}
	bd := l.NewBlockDecoder()
	ext, _ := l.Extents(10, 20)
	var out []byte
	for _, e := range ext {
		units := make([][]byte, c.Shards())
		for i := e.First; i <= e.Last; i++ {
			units[i] = fetch(e.Block, i)
		}
		var err error
		if out, err = bd.Decode(out, e, units); errors.Is(err, erasure.ErrUnrecoverable) {
			for i := range units { // degraded read: fetch the rest and retry
				if units[i] == nil {
					units[i] = fetch(e.Block, i)
				}
			}
			out, err = bd.Decode(out, e, units)
		}
		if err != nil {
			log.Fatal(err)
		}
	}
	rep := bd.Report()
	fmt.Printf("%q, corrupt shards %v, %d degraded block\n", out, rep.Corrupt(), rep.Degraded)
	// Output:
	// "forty bytes from a c", corrupt shards [2], 1 degraded block
}
