// Package storage holds the end-to-end tests of `clipstore storage`
// processes alone, with no meta: shards survive SIGKILL and restart, a
// corrupt shard file is refused and named, the process stops cleanly on
// SIGTERM, and bad flags fail with one line.
package storage
