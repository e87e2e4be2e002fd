package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"

	metapb "github.com/clipstore/clipstore/proto/metapb"
)

// Multipart uploads: a clip written as numbered parts (1..10000), each
// stored and recorded as it arrives, in any order and in parallel, and
// made visible as one clip by CompleteUpload. A part uploaded again
// replaces the earlier one. An upload left open past meta's upload expiry
// (7 days by default) is aborted by meta.

// CreateUpload starts a multipart upload of bucket/key. The content type,
// metadata, capture attributes and profile of opts apply to the clip it
// becomes; its Finish, Progress and IfGenerationMatch are not used (see
// PartOptions and CompleteOptions).
func (c *Client) CreateUpload(ctx context.Context, bucket, key string, opts *PutOptions) (*UploadInfo, error) {
	if opts == nil {
		opts = &PutOptions{}
	}
	prof, err := profileToProto(opts.Profile)
	if err != nil {
		return nil, err
	}
	req := &metapb.CreateUploadRequest{RequestId: newRequestID(), Bucket: bucket, Key: key, ContentType: opts.ContentType,
		UserMetadata: opts.Metadata, Capture: captureToProto(opts.Capture), Profile: prof, ChecksumAlgorithm: opts.ChecksumAlgorithm}
	resp, err := callMeta(ctx, c, "create upload "+bucket+"/"+key, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.CreateUploadResponse, error) {
		return mc.CreateUpload(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	return uploadInfoFromProto(resp.Upload), nil
}

func parseUploadID(id string) ([]byte, error) {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 16 {
		return nil, fmt.Errorf("%w: upload id %q: 32 hex digits expected", ErrNotFound, id)
	}
	return b, nil
}

// PutPart stores part number of an upload, read from r until io.EOF, as
// Put stores a clip: encoded as it is read, streamed to k+m storage nodes,
// in bounded memory. The part is recorded (replacing an earlier one of the
// number) only when PutPart returns nil.
func (c *Client) PutPart(ctx context.Context, bucket, key, uploadID string, number int, r io.Reader, opts *PartOptions) (*PartInfo, error) {
	if opts == nil {
		opts = &PartOptions{}
	}
	id, err := parseUploadID(uploadID)
	if err != nil {
		return nil, err
	}
	if number < 1 || number > 10000 {
		return nil, fmt.Errorf("%w: part number %d outside 1..10000", ErrInvalidArgument, number)
	}
	what := fmt.Sprintf("put part %d of %s/%s", number, bucket, key)
	beginReq := &metapb.BeginPartRequest{Bucket: bucket, Key: key, UploadId: id, Number: uint32(number),
		SizeHint: uint64(max(opts.SizeHint, 0))}
	begin, err := callMeta(ctx, c, what+": begin", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.BeginPutResponse, error) {
		return mc.BeginPart(ctx, beginReq)
	})
	if err != nil {
		return nil, err
	}
	code, err := c.code(profileFromProto(begin.Profile))
	if err != nil {
		return nil, err
	}
	if len(begin.Targets) != code.Shards() {
		return nil, fmt.Errorf("%s: meta returned %d targets for a %d-shard profile", what, len(begin.Targets), code.Shards())
	}
	res, shards, err := newUpload(c, begin, code).run(ctx, r, opts.Progress)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	req := &metapb.CommitPartRequest{RequestId: newRequestID(), Bucket: bucket, Key: key, UploadId: id, Number: uint32(number),
		CommitDeadlineUnixNano: begin.CommitDeadlineUnixNano, Size: uint64(res.Size), ContentCrc32C: res.Checksum, Shards: shards}
	if opts.Finish != nil {
		fin, err := opts.Finish()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if fin != nil {
			req.Etag, req.Checksums = fin.ETag, fin.Checksums
		}
	}
	resp, err := callMeta(ctx, c, what+": commit", func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.CommitPartResponse, error) {
		return mc.CommitPart(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	p := partInfoFromProto(resp.Part.GetPart(), resp.Part.GetCreatedUnixNano())
	return &p, nil
}

// CompleteUpload makes the named parts, in order, the clip at bucket/key,
// in one step: the clip becomes visible whole or not at all, replacing any
// clip there. Parts uploaded and not named are deleted, and the upload is
// gone. Numbers must ascend (ErrInvalidArgument); a part not uploaded, or
// whose ETag differs from the one named, is ErrPrecondition; an unknown
// upload ErrNotFound.
func (c *Client) CompleteUpload(ctx context.Context, bucket, key, uploadID string, parts []CompletedPart, opts *CompleteOptions) (*ClipInfo, error) {
	if opts == nil {
		opts = &CompleteOptions{}
	}
	id, err := parseUploadID(uploadID)
	if err != nil {
		return nil, err
	}
	req := &metapb.CompleteUploadRequest{RequestId: newRequestID(), Bucket: bucket, Key: key, UploadId: id,
		Etag: opts.ETag, Checksums: opts.Checksums, IfGenerationMatch: opts.IfGenerationMatch}
	for _, p := range parts {
		if p.Number < 1 || p.Number > 10000 {
			return nil, fmt.Errorf("%w: part number %d outside 1..10000", ErrInvalidArgument, p.Number)
		}
		req.Parts = append(req.Parts, &metapb.CompletedPart{Number: uint32(p.Number), Etag: p.ETag})
	}
	resp, err := callMeta(ctx, c, "complete upload of "+bucket+"/"+key, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.CommitPutResponse, error) {
		return mc.CompleteUpload(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	return clipInfoFromProto(resp.Clip, 0, len(resp.Clip.GetParts())), nil
}

// AbortUpload ends an upload without a clip: its parts are deleted.
func (c *Client) AbortUpload(ctx context.Context, bucket, key, uploadID string) error {
	id, err := parseUploadID(uploadID)
	if err != nil {
		return err
	}
	req := &metapb.AbortUploadRequest{RequestId: newRequestID(), Bucket: bucket, Key: key, UploadId: id}
	_, err = callMeta(ctx, c, "abort upload of "+bucket+"/"+key, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.AbortUploadResponse, error) {
		return mc.AbortUpload(ctx, req)
	})
	return err
}

// ListParts returns an upload and its parts numbered after after, at most
// max of them (1000 when max <= 0), and whether more follow.
func (c *Client) ListParts(ctx context.Context, bucket, key, uploadID string, after, max int) (*UploadInfo, []PartInfo, bool, error) {
	id, err := parseUploadID(uploadID)
	if err != nil {
		return nil, nil, false, err
	}
	if after < 0 {
		after = 0
	}
	req := &metapb.ListPartsRequest{Bucket: bucket, Key: key, UploadId: id, After: uint32(min(after, 10000)), MaxParts: uint32(clampPage(max))}
	resp, err := callMeta(ctx, c, "list parts of "+bucket+"/"+key, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.ListPartsResponse, error) {
		return mc.ListParts(ctx, req)
	})
	if err != nil {
		return nil, nil, false, err
	}
	var parts []PartInfo
	for _, p := range resp.Parts {
		parts = append(parts, partInfoFromProto(p.GetPart(), p.GetCreatedUnixNano()))
	}
	return uploadInfoFromProto(resp.Upload), parts, resp.Truncated, nil
}

// ListUploads lists a bucket's uploads in progress whose keys start with
// prefix, by key then upload id, starting after keyMarker (and, for that
// key, after uploadIDMarker): at most max (1000 when max <= 0), and
// whether more follow.
func (c *Client) ListUploads(ctx context.Context, bucket, prefix, keyMarker, uploadIDMarker string, max int) ([]UploadInfo, bool, error) {
	req := &metapb.ListUploadsRequest{Bucket: bucket, Prefix: prefix, KeyMarker: keyMarker, MaxUploads: uint32(clampPage(max))}
	if uploadIDMarker != "" {
		id, err := parseUploadID(uploadIDMarker)
		if err != nil {
			return nil, false, fmt.Errorf("%w: upload id marker %q", ErrInvalidArgument, uploadIDMarker)
		}
		req.UploadIdMarker = id
	}
	resp, err := callMeta(ctx, c, "list uploads of "+bucket, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.ListUploadsResponse, error) {
		return mc.ListUploads(ctx, req)
	})
	if err != nil {
		return nil, false, err
	}
	out := make([]UploadInfo, 0, len(resp.Uploads))
	for _, u := range resp.Uploads {
		out = append(out, *uploadInfoFromProto(u))
	}
	return out, resp.Truncated, nil
}

func clampPage(n int) int {
	if n <= 0 || n > 1000 {
		return 1000
	}
	return n
}
