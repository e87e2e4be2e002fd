// Package meta is clipstore's metadata service: a Raft group
// (hashicorp/raft) whose replicated state machine keeps, in one bbolt file
// per member, the buckets, the clip records with the placement and state
// of every shard, the storage nodes and their up/down state, the delete
// queue of every node, the meta members' addresses, the repair limits and,
// for Config.RequestTTL, the outcome of every request id. Clip data never
// passes through it.
//
// Node is one member: New opens its state under Config.DataDir and starts
// Raft; Node.Service is its MetaService (proto/metapb) for a gRPC server.
// Any member answers any call: writes and linearizable reads run on the
// leader (a follower forwards them), stale reads locally. A write is one
// Raft entry (a metapb.Command) that every member applies in the same bbolt
// transaction as the applied index; Apply validates it and never reads a
// clock, taking time from the command (the leader's clock at proposal).
// A proposal whose fate is unknown fails with ErrOutcomeUnknown, and a
// retry with the same request id learns it.
//
// The leader alone also places new clips (Place, at BeginPut, which
// persists nothing), tracks storage node heartbeats and marks silent nodes
// down, and plans repairs that it hands to storage nodes in heartbeat
// answers; the node that rebuilds a shard commits it with a conditional
// UpdateShard. That memory is not replicated: a new leader rebuilds it from
// the replicated state and fresh heartbeats.
//
// See DESIGN.md for the trade-offs (state batching, snapshots, read
// barriers, proposals, leader-only memory, placement) and docs/design.md
// at the root of the repository for the system as a whole.
package meta
