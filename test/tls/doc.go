// Package tls holds the end-to-end tests of a cluster whose every link is
// TLS with mutual authentication: clients, storage nodes, meta members
// (gRPC and Raft) and the S3 gateway present certificates of the
// cluster's CA, and the role a certificate carries bounds what it may call.
package tls
