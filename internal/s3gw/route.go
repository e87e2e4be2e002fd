package s3gw

import (
	"net/http"
)

// unsupported are the sub-resources (query parameters that select an
// operation) of S3 operations the gateway does not implement: a request
// naming one is answered NotImplemented, never served as the plain bucket
// or object operation its method would otherwise select.
var unsupported = []string{
	"accelerate", "acl", "analytics", "attributes", "cors", "encryption", "intelligent-tiering", "inventory",
	"legal-hold", "lifecycle", "logging", "metadataConfiguration", "metadataTable", "metrics", "notification",
	"object-lock", "ownershipControls", "policy", "policyStatus", "publicAccessBlock", "renameObject",
	"replication", "requestPayment", "restore", "retention", "select", "select-type", "session", "tagging",
	"torrent", "versions", "website",
}

// route picks the operation of a request by method, bucket, key and
// sub-resource. A request for something not implemented gets an error
// handler, so that it is still authenticated first.
func (g *Gateway) route(req *request) (string, handler, error) {
	for _, sub := range unsupported {
		if req.query.Has(sub) {
			return "NotImplemented", nil, errNotImplemented.with("The %s sub-resource is not implemented.", sub)
		}
	}
	switch {
	case req.bucket == "":
		if req.Method == http.MethodGet {
			return "ListBuckets", (*Gateway).listBuckets, nil
		}
	case req.key == "":
		return routeBucket(req)
	default:
		return routeObject(req)
	}
	return "MethodNotAllowed", nil, errMethodNotAllowed
}

func routeBucket(req *request) (string, handler, error) {
	m := req.Method
	switch {
	case req.query.Has(planQuery):
		if m == http.MethodGet {
			return "ClipstorePlan", (*Gateway).plan, nil
		}
	case req.query.Has("location"):
		if m == http.MethodGet {
			return "GetBucketLocation", (*Gateway).getBucketLocation, nil
		}
	case req.query.Has("versioning"):
		if m == http.MethodGet {
			return "GetBucketVersioning", (*Gateway).getBucketVersioning, nil
		}
		return "NotImplemented", nil, errNotImplemented.with("Bucket versioning is not implemented.")
	case req.query.Has("delete"):
		if m == http.MethodPost {
			return "DeleteObjects", (*Gateway).deleteObjects, nil
		}
	case req.query.Has("uploads"):
		if m == http.MethodGet {
			return "ListMultipartUploads", (*Gateway).listUploads, nil
		}
	case m == http.MethodPut:
		return "CreateBucket", (*Gateway).createBucket, nil
	case m == http.MethodDelete:
		return "DeleteBucket", (*Gateway).deleteBucket, nil
	case m == http.MethodHead:
		return "HeadBucket", (*Gateway).headBucket, nil
	case m == http.MethodGet && req.query.Get("list-type") == "2":
		return "ListObjectsV2", (*Gateway).listObjectsV2, nil
	case m == http.MethodGet && req.query.Has("list-type"):
		return "ListObjects", nil, errInvalidArgument.with("Invalid list-type %q", truncate(req.query.Get("list-type")))
	case m == http.MethodGet:
		return "ListObjects", (*Gateway).listObjectsV1, nil
	case m == http.MethodPost:
		return "NotImplemented", nil, errNotImplemented.with("POST object uploads are not implemented.")
	}
	return "MethodNotAllowed", nil, errMethodNotAllowed
}

func routeObject(req *request) (string, handler, error) {
	switch {
	case req.query.Has("uploadId"):
		return routeUpload(req)
	case req.query.Has("uploads"):
		if req.Method == http.MethodPost {
			return "CreateMultipartUpload", (*Gateway).createUpload, nil
		}
		return "MethodNotAllowed", nil, errMethodNotAllowed
	}
	switch req.Method {
	case http.MethodPut:
		if req.Header.Get("X-Amz-Copy-Source") != "" {
			return "CopyObject", (*Gateway).copyObject, nil
		}
		return "PutObject", (*Gateway).putObject, nil
	case http.MethodGet:
		return "GetObject", (*Gateway).getObject, nil
	case http.MethodHead:
		return "HeadObject", (*Gateway).headObject, nil
	case http.MethodDelete:
		return "DeleteObject", (*Gateway).deleteObject, nil
	case http.MethodPost:
		return "NotImplemented", nil, errNotImplemented.with("POST on an object is not implemented.")
	}
	return "MethodNotAllowed", nil, errMethodNotAllowed
}

// routeUpload routes the operations on one multipart upload (?uploadId=).
func routeUpload(req *request) (string, handler, error) {
	switch req.Method {
	case http.MethodPut:
		op, h := "UploadPart", (*Gateway).uploadPart
		if req.Header.Get("X-Amz-Copy-Source") != "" {
			op, h = "UploadPartCopy", (*Gateway).uploadPartCopy
		}
		if !req.query.Has("partNumber") {
			return op, nil, errInvalidArgument.with("A part upload needs a partNumber.")
		}
		return op, h, nil
	case http.MethodPost:
		return "CompleteMultipartUpload", (*Gateway).completeUpload, nil
	case http.MethodDelete:
		return "AbortMultipartUpload", (*Gateway).abortUpload, nil
	case http.MethodGet:
		return "ListParts", (*Gateway).listParts, nil
	}
	return "MethodNotAllowed", nil, errMethodNotAllowed
}
