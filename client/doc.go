// Package client is the Go library that ingest pipelines and training jobs
// use to store and read clips in a clipstore cluster. It asks meta for
// records and placement, and does the erasure coding itself: a Put encodes
// the clip block by block and streams the k+m shards straight to the
// storage nodes, and a read fetches the pieces it needs from them, verifies
// every one, and rebuilds lost or corrupt pieces from parity. Clip data
// never passes through meta.
//
// Memory is bounded by Config.BlocksInFlight blocks per Put or read,
// whatever the clip's size. Errors wrap the sentinels of this package
// (ErrNotFound, ErrUnrecoverable, ...) for errors.Is. The package imports
// only erasure, internal/wire (the data path's gRPC settings) and the
// generated protocol code, never meta, server, raft or bbolt
// (TestDependencies); see DESIGN.md for the trade-offs of the write and
// read paths.
package client
