// Package durability holds the end-to-end tests of what clipstore does to
// keep clips whole: repair of a dead or wiped node, nodes killed during
// ingest or down at put time, scrubbing of corrupt shards, garbage
// collection of abandoned uploads and stale shards, and what happens when
// too many shards are lost. Each runs 3 meta and 6 or 7 storage processes
// with short timers (e2e.StartDurabilityCluster).
package durability
