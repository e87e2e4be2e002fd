// Package s3 holds the end-to-end tests of the S3 gateway: a real cluster
// and `clipstore s3` processes on loopback, driven by the tools people use
// (Debian's aws-cli and boto3, which `make test` installs).
package s3
