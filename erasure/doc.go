// Package erasure is clipstore's block codec: it cuts a clip into blocks,
// encodes every block into k data and m parity pieces with Reed-Solomon
// (github.com/klauspost/reedsolomon), protects every piece with a CRC32C, and
// decodes a clip, a byte range of it, or one lost shard from any k healthy
// pieces per block. It owns the shard stream format; it does no network or
// disk I/O of its own beyond the io.Reader and io.Writer values it is given.
//
// # Format
//
// A clip of size bytes coded RS(k,m) with block size B has ceil(size/B)
// blocks; block b holds clip bytes [b*B, min((b+1)*B, size)). Each block is
// split into k data pieces of P_b = ceil(blockLen/k) bytes (the last data
// piece zero-padded) and m parity pieces of P_b bytes. Every full block has
// P_b = PieceSize(B, k); only the last block may have smaller pieces.
//
// Piece i of block b carries the CRC PieceCRC(i, b, piece), seeded with the
// shard index and block number so that a piece in the wrong place fails
// verification. The shard stream of index i is, for every block in order,
// piece i followed by the block's trailer (AppendTrailer): the CRCs of all
// k+m pieces of the block plus a CRC of the trailer itself. A piece and its
// trailer form a unit; unit b of every shard starts at the fixed offset
// b*(PieceSize(B,k)+TrailerSize(k+m)) (see Layout), so a range read fetches
// only the units that hold the range and verifies exactly what it reads, and
// a piece rebuilt from others is checked against the CRC list of any verified
// trailer. A shard's checksum is ShardSum over its piece CRCs in block order.
//
// # Use
//
// New returns a Code for one (k, m, block size) profile; it is safe for
// concurrent use. Code.Layout gives a clip's geometry: unit offsets and
// lengths, and which pieces hold a byte range (Layout.Extents).
//
// Writers stream blocks with Code.NewEncoder, sending Block.Pieces[i] and
// Block.Trailer(i) to the node of shard i and releasing each block when it
// is sent, or write whole shard streams with Code.Encode. Both compute the
// clip's size, content checksum (CRC32C) and every shard's ShardSum.
//
// Readers decode whole clips from shard streams with Code.Decode, byte
// ranges with Code.DecodeRange, or block by block, from units they fetched
// themselves, with a BlockDecoder. Storage nodes regenerate a lost shard
// with Code.Rebuild or BlockDecoder.Rebuild.
//
// Decoding never returns a byte that was not verified. A piece that fails
// its CRC, or whose trailer disagrees with the block's other pieces, is
// treated as missing and reported as a *PieceError (wrapping ErrCorrupt) in
// the Report every decode returns, so that callers can report corrupt
// shards whether or not the decode succeeded. A block with fewer than k
// healthy pieces fails with ErrUnrecoverable. Pieces are rebuilt with
// Reed-Solomon only when a needed one is missing, and every rebuilt piece is
// checked against the block's CRC list before its bytes are used.
package erasure
