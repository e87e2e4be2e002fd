// Package server is the clipstore storage node: it keeps erasure-coded shards
// as files on one or more local disks and serves them over gRPC
// (proto/storagepb.StorageService).
//
// A shard's file path comes from its 128-bit shard id alone
// (shards/cd/<32 hex digits ending in cd>, in one of 256 directories made
// when the disk is first opened), never from a bucket or key, and every file
// is reached through an os.Root per disk. A shard file is a fixed-size
// header with its own CRC (see shard_file.go) followed by the shard stream
// exactly as package erasure lays it out: for every block its piece and a
// trailer holding the CRCs of all the block's pieces. Piece b therefore sits
// at a fixed offset and a range read verifies just what it reads.
//
// Writes land in a file with no name (O_TMPFILE) in the shard's directory,
// or in a per-disk tmp/ directory where the filesystem cannot make one, and
// become visible only after every piece's CRC was checked, the file
// fsynced, linked or renamed into place and made durable there; a write
// that ends any other way, a crash included, leaves nothing that is ever
// served, and leftover temp files are removed when the node starts. Every
// read re-verifies each piece before a byte leaves the node.
//
// With Config.Meta set, the node registers with meta and heartbeats it:
// capacity, free space, per-disk incarnations, scrub progress and the
// shards it found corrupt or missing go up; the shards to delete and the
// repairs to run come down in the answers (meta never dials a storage
// node). The node then runs that work and its own upkeep: repairs rebuild a
// lost shard from k others and commit it with a conditional UpdateShard;
// the scrubber re-reads every shard at a bounded rate; the garbage
// collector deletes the shards meta confirms no record references past
// their commit deadline; and the inventory check reports the shards meta
// places on the node that it lacks. Without Meta the node serves its shards
// stand-alone (tests, tools).
//
// All disk I/O goes through the FS interface so that tests can wrap the real
// filesystem with faults (package server/faultfs).
package server
