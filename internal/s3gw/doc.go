// Package s3gw is the HTTP layer of the S3 gateway (clipstore s3): an
// http.Handler that speaks the S3 REST API over the client library. It is
// stateless; any number of gateways can serve one cluster behind a load
// balancer.
//
// Every request is authenticated with internal/sigv4 (there is no
// anonymous access) and its body decoded by it, then routed by method,
// bucket, key and sub-resource to one operation: the bucket operations
// (ListBuckets, CreateBucket, DeleteBucket, HeadBucket,
// GetBucketLocation), the listings (ListObjectsV2, ListObjects), the
// object operations (PutObject, CopyObject, GetObject, HeadObject,
// DeleteObject, DeleteObjects) and multipart uploads
// (CreateMultipartUpload, UploadPart, UploadPartCopy,
// CompleteMultipartUpload, AbortMultipartUpload, ListParts,
// ListMultipartUploads; GetObject and HeadObject by partNumber). A
// sub-resource or an operation it does not implement (ACLs, versioning,
// tagging, ...) is answered NotImplemented, never mistaken for an object
// operation. Errors are S3's XML error documents, mapped from the client
// library's sentinels.
//
// Object bytes stream in bounded memory whatever the object's size: a
// PutObject hands the decoded body to client.Put while a goroutine beside
// it hashes what passes (the MD5 that is the ETag, and the checksum the
// request asks for); both are verified in PutOptions.Finish, before the
// commit, so an object whose digest does not match never becomes visible.
// An UploadPart is streamed the same way, through client.PutPart.
// CopyObject and UploadPartCopy are new writes too: the gateway reads the
// source (client.Open, its generation pinned) and streams it into
// client.Put or PutPart through the same hashing, so the copy gets new
// shards under its own clip id and its bytes never pass through the
// caller. A GetObject reads the clip in 1 MiB pieces as the response is
// written. See DESIGN.md for the trade-offs.
package s3gw
