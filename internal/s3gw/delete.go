package s3gw

import (
	"context"
	"encoding/xml"
	"errors"
	"net/http"

	"github.com/clipstore/clipstore/client"
	"golang.org/x/sync/errgroup"
)

// S3's bounds on a DeleteObjects request.
const (
	maxDeleteKeys = 1000
	maxDeleteBody = 2 << 20 // 1000 keys of 1024 bytes, escaped, and the XML around them
)

// deleteConcurrency is how many deletes of one DeleteObjects run at once.
const deleteConcurrency = 16

func (g *Gateway) deleteObject(w *response, req *request) error {
	if req.Header.Get("If-Match") != "" {
		return errNotImplemented.with("Conditional deletes are not implemented.")
	}
	if err := g.delete(req.Context(), req.bucket, req.key); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// delete deletes a key: done, as in S3, if the bucket exists and the key
// does not.
func (g *Gateway) delete(ctx context.Context, bucket, key string) error {
	err := g.cfg.Client.Delete(ctx, bucket, key)
	if errors.Is(err, client.ErrNotFound) {
		return g.checkBucket(ctx, bucket)
	}
	return err
}

type deleteRequest struct {
	XMLName xml.Name `xml:"Delete"`
	Quiet   bool
	Objects []struct {
		Key       string
		VersionID string `xml:"VersionId"`
	} `xml:"Object"`
}

type deleteResult struct {
	XMLName xml.Name        `xml:"DeleteResult"`
	NS      string          `xml:"xmlns,attr"`
	Deleted []deletedEntry  `xml:"Deleted"`
	Errors  []deleteFailure `xml:"Error"`
}

type deletedEntry struct {
	Key string
}

type deleteFailure struct {
	Key     string
	Code    string
	Message string
}

func (g *Gateway) deleteObjects(w *response, req *request) error {
	dr, err := readDeleteRequest(req)
	if err != nil {
		return err
	}
	if err := g.checkBucket(req.Context(), req.bucket); err != nil {
		return err
	}
	errs := make([]error, len(dr.Objects))
	eg, ctx := errgroup.WithContext(req.Context())
	eg.SetLimit(deleteConcurrency)
	for i, o := range dr.Objects {
		eg.Go(func() error {
			switch {
			case o.VersionID != "" && o.VersionID != "null":
				errs[i] = errNotImplemented.with("Deleting a version is not implemented.")
			case o.Key == "" || len(o.Key) > maxKeyLen:
				errs[i] = errInvalidArgument.with("Invalid key.")
			default:
				errs[i] = g.delete(ctx, req.bucket, o.Key)
			}
			return nil
		})
	}
	eg.Wait()
	res := deleteResult{NS: xmlNS}
	for i, o := range dr.Objects {
		if errs[i] == nil {
			if !dr.Quiet {
				res.Deleted = append(res.Deleted, deletedEntry{Key: o.Key})
			}
			continue
		}
		e := toS3(errs[i], keyNotFound)
		if e.HTTPStatus >= 500 {
			g.log.Warn("delete failed", "id", req.id, "bucket", req.bucket, "key", o.Key, "err", errs[i])
		}
		res.Errors = append(res.Errors, deleteFailure{Key: o.Key, Code: e.Code, Message: e.Message})
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

// readDeleteRequest reads and checks a DeleteObjects body: S3 requires
// Content-MD5 or a checksum, which must match.
func readDeleteRequest(req *request) (*deleteRequest, error) {
	body, counted, err := req.body()
	if err != nil {
		return nil, err
	}
	want, err := parseDigests(req.Header, body.DeclaredTrailers())
	if err != nil {
		return nil, err
	}
	if want.md5 == nil && want.value == "" && !want.trailer {
		return nil, errInvalidRequest.with("Missing required header for this request: Content-MD5 or x-amz-checksum-*")
	}
	d := newDigester(counted, want.hashes())
	defer d.stop()
	doc, err := readAtMost(d, maxDeleteBody)
	if err != nil {
		return nil, err
	}
	sums, err := d.sums()
	if err != nil {
		return nil, err
	}
	if _, _, err := want.verified(sums, body); err != nil {
		return nil, err
	}
	var dr deleteRequest
	if err := xml.Unmarshal(doc, &dr); err != nil || len(dr.Objects) == 0 || len(dr.Objects) > maxDeleteKeys {
		return nil, errMalformedXML
	}
	return &dr, nil
}
