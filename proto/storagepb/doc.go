// Package storagepb is the Go code generated from proto/storage.proto: the
// storage node's gRPC API, shards of erasure-coded clips written and read
// whole pieces at a time. `make proto` regenerates every file here but this
// one.
package storagepb
