// Package cli holds the end-to-end tests of the clipstore command line
// against a cluster of real processes: the whole system end to end
// through the CLI and the client (puts, reads, failover, restarts, bad
// input, fsck), `clipstore cluster status` showing scrub and repair, and
// `clipstore bench`. The harness is test/e2e.
package cli
