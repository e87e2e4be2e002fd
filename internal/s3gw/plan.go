package s3gw

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/clipstore/clipstore/client"
)

// planQuery marks clipstore's own request on a bucket: a rank's share of
// an epoch plan of one of the bucket's datasets, for loaders that speak
// S3 (python/clipstore). It is signed like any request:
//
//	GET /BUCKET?x-clipstore-plan&dataset=NAME&seed=S&epoch=E&world=W&rank=R[&from=N][&pad|&drop-last][&page-start=I][&page-size=N]
//
// The answer is JSON: the plan's version, the rank's items of the page
// (position, key, generation, size, member), more and next, and the
// spread over the ranks.
const planQuery = "x-clipstore-plan"

// planPageMax bounds a page of a plan.
const planPageMax = 10_000

type planItemJSON struct {
	Position   int64  `json:"position"`
	Key        string `json:"key"`
	Generation uint64 `json:"generation"`
	Size       int64  `json:"size"`
	Member     int    `json:"member"`
}

type planJSON struct {
	Version     int            `json:"version"`
	Dataset     string         `json:"dataset"`
	Bucket      string         `json:"bucket"`
	RankItems   int            `json:"rank_items"`
	EpochLength int64          `json:"epoch_length"`
	MinItems    int            `json:"min_items"`
	MaxItems    int            `json:"max_items"`
	MinBytes    int64          `json:"min_bytes"`
	MaxBytes    int64          `json:"max_bytes"`
	Items       []planItemJSON `json:"items"`
	More        bool           `json:"more"`
	Next        int            `json:"next"`
}

func (g *Gateway) plan(w *response, req *request) error {
	q := req.query
	uintArg := func(name string) (uint64, error) {
		if !q.Has(name) {
			return 0, nil
		}
		v, err := strconv.ParseUint(q.Get(name), 10, 64)
		if err != nil {
			return 0, errInvalidArgument.with("Invalid %s %q: want a non-negative integer", name, truncate(q.Get(name)))
		}
		return v, nil
	}
	dataset := q.Get("dataset")
	if dataset == "" {
		return errInvalidArgument.with("A plan needs dataset=NAME")
	}
	var o client.PlanOptions
	var err error
	if o.Seed, err = uintArg("seed"); err != nil {
		return err
	}
	if o.Epoch, err = uintArg("epoch"); err != nil {
		return err
	}
	world, err := uintArg("world")
	if err != nil {
		return err
	}
	rank, err := uintArg("rank")
	if err != nil {
		return err
	}
	from, err := uintArg("from")
	if err != nil {
		return err
	}
	start, err := uintArg("page-start")
	if err != nil {
		return err
	}
	size, err := uintArg("page-size")
	if err != nil {
		return err
	}
	if world == 0 || world > 1<<20 || rank >= world {
		return errInvalidArgument.with("A plan needs world >= 1 and 0 <= rank < world")
	}
	o.World, o.Rank, o.From, o.Pad, o.DropLast = int(world), int(rank), int64(min(from, 1<<62)), q.Has("pad"), q.Has("drop-last")
	if size == 0 || size > planPageMax {
		size = planPageMax
	}
	info, items, more, err := g.cfg.Client.PlanPage(req.Context(), dataset, o, start, int(size))
	switch {
	case errors.Is(err, client.ErrNotFound):
		return errNoSuchKey.with("The dataset %q does not exist.", truncate(dataset))
	case err != nil:
		return err
	case info.Bucket != req.bucket:
		return errNoSuchKey.with("The dataset %q is not of bucket %q.", truncate(dataset), truncate(req.bucket))
	}
	out := planJSON{Version: info.Version, Dataset: dataset, Bucket: info.Bucket, RankItems: info.RankItems, EpochLength: info.EpochLength,
		MinItems: info.MinItems, MaxItems: info.MaxItems, MinBytes: info.MinBytes, MaxBytes: info.MaxBytes, Items: []planItemJSON{},
		More: more, Next: int(start) + len(items)}
	for _, it := range items {
		out.Items = append(out.Items, planItemJSON{Position: it.Position, Key: it.Key, Generation: it.Generation, Size: it.Size, Member: it.Member})
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
}
