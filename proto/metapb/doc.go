// Package metapb is the Go code generated from proto/meta.proto and
// proto/metafsm.proto: the meta service's gRPC API (buckets, clip records
// and the placement of their shards, storage nodes, the Raft group) and
// the persistent formats of the meta Raft log and FSM. `make proto`
// regenerates every file here but this one.
package metapb
