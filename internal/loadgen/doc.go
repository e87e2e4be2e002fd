// Package loadgen is the engine of `clipstore bench`: it drives a store
// with put, get, mixed and list workloads and measures throughput and
// latency per operation and clip size, in the spirit of minio's warp. The
// workloads see a store through a small interface (Store) with two
// implementations: a cluster through the public client library
// (NewClientStore) and any S3 endpoint through the AWS SDK for Go v2
// (NewS3Store), such as the clipstore s3 gateway or MinIO, measured and
// verified the same way.
//
// Every byte a workload reads back is checked against what it wrote: clip
// content is a deterministic function of the key and the seed (Content),
// produced by a ClipReader and checked by a Verifier without a per-byte
// loop, so the generator runs at memory speed and the numbers measure the
// store. A wrong, missing or extra byte is a failed operation, never a
// statistic. Run owns every goroutine it starts and removes the clips it
// created unless told to keep them; see DESIGN.md for the measurement
// rules.
package loadgen
