// Package e2e is the harness of clipstore's end-to-end tests (the packages
// under test/): it builds the clipstore binary once per test package
// (Main), starts real processes on 127.0.0.1 with random ports through
// internal/proctest (Start, StartStorage, StartCluster), runs the CLI
// against them (Cluster.CLI), and checks the invariants listed in
// docs/design.md from the outside, through the public gRPC APIs and the
// CLI: clips read back whole and in ranges (CheckAll), shards where meta
// says (ClipsFull, ShardPath), fsck clean (FsckClean).
//
// Every wait is bounded (internal/await) and every process is killed and
// reaped at its test's cleanup.
package e2e
