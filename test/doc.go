// Package test holds clipstore's end-to-end tests: they build the clipstore
// binary once, start real processes on 127.0.0.1 with random ports, kill
// them with SIGKILL, restart them, damage their files, and check the
// invariants listed in docs/design.md from the outside, through the public
// gRPC APIs and the CLI.
package test
