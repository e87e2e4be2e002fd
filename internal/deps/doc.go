// Package deps has no code: its test holds the lines the whole tree's
// layout draws (STYLE.md, "Layout shows the architecture"), over what
// `go list -deps` reports for production code (tests may import more):
//
//   - erasure is a pure codec: the standard library and
//     klauspost/reedsolomon (with its own dependencies), nothing else;
//   - meta and server do not import each other;
//   - client, which ingest pipelines import, pulls in neither meta nor
//     server, nor raft or bbolt;
//   - every package has a package comment.
package deps
