package client

import (
	"context"
	"errors"
	"fmt"
	"slices"

	metapb "github.com/clipstore/clipstore/proto/metapb"
)

// A record written by a multipart upload has up to maxParts parts, each
// with its k+m shards: megabytes for the largest. Meta answers them a page
// at a time (GetClipRequest.parts), and reads ask for the parts they reach
// only.
const (
	maxParts = 10000
	// firstReadahead is how many parts the first page a Reader's
	// sequential reads fetch asks for; each later one asks for twice as
	// many, up to maxReadahead (meta answers its page size at most).
	firstReadahead = 8
	maxReadahead   = 1024
	// maxPages bounds the pages of parts a view keeps (the part views a
	// Reader made are kept apart from them).
	maxPages = 16
	// statAttempts is how many times Stat pages through a record that
	// changes meanwhile before it gives up.
	statAttempts = 3
)

// partPage is a run of a record's parts: parts[0] is its part first.
type partPage struct {
	first int
	parts []*metapb.Part
}

// holds reports whether clip byte off is in one of the page's parts.
func (pg partPage) holds(off int64) bool {
	if len(pg.parts) == 0 {
		return false
	}
	last := pg.parts[len(pg.parts)-1]
	return int64(pg.parts[0].Offset) <= off && off < int64(last.Offset+last.Length)
}

// getClip reads a clip's record, linearizably: with every part if sel is
// nil, else with those sel chooses (a page at most). The paging fields of
// the answer are always set: an answer of a meta that predates paging
// (every part) is made one of a page holding them all, or of the one part
// at sel's position.
func (c *Client) getClip(ctx context.Context, bucket, key string, sel *metapb.PartSelector) (*metapb.GetClipResponse, error) {
	return c.getClipAt(ctx, bucket, key, 0, sel)
}

// getClipAt is getClip of generation gen (0: the current one; an older
// one while a dataset keeps it).
func (c *Client) getClipAt(ctx context.Context, bucket, key string, gen uint64, sel *metapb.PartSelector) (*metapb.GetClipResponse, error) {
	resp, err := callMeta(ctx, c, "get "+bucket+"/"+key, func(ctx context.Context, mc metapb.MetaServiceClient) (*metapb.GetClipResponse, error) {
		return mc.GetClip(ctx, &metapb.GetClipRequest{Bucket: bucket, Key: key, Parts: sel, Generation: gen})
	})
	if err != nil {
		return nil, err
	}
	if resp.Clip == nil {
		return nil, fmt.Errorf("%w: get %s/%s: meta answered no record", ErrUnavailable, bucket, key)
	}
	paged(resp, sel)
	return resp, nil
}

// paged sets the paging fields of an answer to a request with selector sel
// that has none: it has every part (no selector, or a meta that predates
// them), and becomes a page holding them all, or the one part at sel's
// position.
func paged(resp *metapb.GetClipResponse, sel *metapb.PartSelector) {
	if resp.PartCount != 0 {
		return
	}
	parts := resp.Clip.GetParts()
	resp.PartCount, resp.FirstPart, resp.MoreParts = uint32(len(parts)), 0, false
	if i := int(sel.GetPosition()) - 1; i >= 0 {
		resp.Clip.Parts = nil
		if i < len(parts) {
			resp.Clip.Parts, resp.FirstPart = parts[i:i+1], uint32(i)
		}
	}
}

// allPartsAt reads generation gen (0: the current one) of a clip's record
// with every part, a page at a time, all of one generation: a record that
// changes meanwhile is read again, up to statAttempts times, before it
// fails with ErrClipChanged.
func (c *Client) allPartsAt(ctx context.Context, bucket, key string, gen uint64) (*metapb.GetClipResponse, error) {
	var err error
	for range statAttempts {
		var first *metapb.GetClipResponse
		if first, err = c.getClipAt(ctx, bucket, key, gen, &metapb.PartSelector{}); err != nil {
			return nil, err
		}
		v := &clipView{c: c, rec: first.Clip, count: int(first.PartCount)}
		page := partPage{first: int(first.FirstPart), parts: first.Clip.Parts}
		if err := checkParts(v.rec, page, v.count); err != nil {
			return nil, err
		}
		if page.first != 0 {
			return nil, fmt.Errorf("%w: %s/%s: asked meta for the parts from 0, it answered from %d", ErrUnrecoverable, bucket, key, page.first)
		}
		nodes := map[string]bool{}
		for _, n := range first.Nodes {
			nodes[n.NodeId] = true
		}
		for next := len(page.parts); next < v.count && err == nil; next += len(page.parts) {
			var resp *metapb.GetClipResponse
			resp, err = v.fetch(ctx, &metapb.PartSelector{FirstPart: uint32(next)})
			if err != nil {
				break
			}
			if page = (partPage{int(resp.FirstPart), resp.Clip.Parts}); page.first != next || len(page.parts) == 0 {
				return nil, fmt.Errorf("%w: %s/%s: asked meta for the parts from %d, it answered %d from %d",
					ErrUnrecoverable, bucket, key, next, len(page.parts), page.first)
			}
			first.Clip.Parts = append(first.Clip.Parts, page.parts...)
			for _, n := range resp.Nodes {
				if !nodes[n.NodeId] {
					nodes[n.NodeId] = true
					first.Nodes = append(first.Nodes, n)
				}
			}
		}
		if err == nil {
			first.MoreParts = false
			return first, nil
		}
		if !errors.Is(err, ErrClipChanged) {
			return nil, err
		}
	}
	return nil, err
}

// fetch asks meta for the parts sel chooses of the pinned generation. It
// fails with ErrClipChanged if the key no longer maps to that generation,
// and learns the addresses of the nodes the parts are on.
func (v *clipView) fetch(ctx context.Context, sel *metapb.PartSelector) (*metapb.GetClipResponse, error) {
	rec := v.rec
	resp, err := v.c.getClipAt(ctx, rec.Bucket, rec.Key, rec.Generation, sel)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("%w: %s/%s was deleted (read pinned generation %d)", ErrClipChanged, rec.Bucket, rec.Key, rec.Generation)
	case err != nil:
		return nil, err
	case resp.Clip.Generation != rec.Generation || string(resp.Clip.ClipId) != string(rec.ClipId):
		return nil, fmt.Errorf("%w: %s/%s is at generation %d, the read pinned %d", ErrClipChanged, rec.Bucket, rec.Key,
			resp.Clip.Generation, rec.Generation)
	case int(resp.PartCount) != v.count:
		return nil, fmt.Errorf("%w: %s/%s has %d parts at generation %d, %d when the read began",
			ErrUnrecoverable, rec.Bucket, rec.Key, resp.PartCount, rec.Generation, v.count)
	}
	if err := checkParts(rec, partPage{int(resp.FirstPart), resp.Clip.Parts}, v.count); err != nil {
		return nil, err
	}
	if v.mu.addrs != nil {
		v.learnAddrs(resp.Nodes)
	}
	v.setToken(resp.Capability)
	return resp, nil
}

// fetchPage is fetch's page of parts.
func (v *clipView) fetchPage(ctx context.Context, sel *metapb.PartSelector) (partPage, error) {
	resp, err := v.fetch(ctx, sel)
	if err != nil {
		return partPage{}, err
	}
	return partPage{first: int(resp.FirstPart), parts: resp.Clip.Parts}, nil
}

// pageHolding returns a page of parts whose first part holds clip byte
// off (0 <= off < size): one the view keeps, or else the page meta answers
// for the parts of [off, off+n), or, when n is 0 (sequential reads, whose
// end is not known), for the next readahead parts from off, which grows
// with each page.
func (v *clipView) pageHolding(ctx context.Context, off, n int64) (partPage, error) {
	v.mu.Lock()
	for i := len(v.mu.pages) - 1; i >= 0; i-- {
		if pg := v.mu.pages[i]; pg.holds(off) {
			v.mu.Unlock()
			return pg, nil
		}
	}
	sel := &metapb.PartSelector{Offset: off}
	if n > 0 {
		sel.Length = &n
	} else {
		sel.MaxParts = uint32(v.mu.readahead)
		v.mu.readahead = min(2*v.mu.readahead, maxReadahead)
	}
	v.mu.Unlock()
	page, err := v.fetchPage(ctx, sel)
	if err != nil {
		return partPage{}, err
	}
	if !page.holds(off) {
		return partPage{}, fmt.Errorf("%w: %s/%s: asked meta for the parts from byte %d, it answered none holding it",
			ErrUnrecoverable, v.rec.Bucket, v.rec.Key, off)
	}
	v.mu.Lock()
	if len(v.mu.pages) >= maxPages {
		v.mu.pages = slices.Delete(v.mu.pages, 0, 1)
	}
	v.mu.pages = append(v.mu.pages, page)
	v.mu.Unlock()
	return page, nil
}
