package client

// ListPages lists with a given page size, so that tests can page through
// a listing without storing thousands of clips.
var ListPages = (*Client).list

// ReaderShardNode is the node a Reader reads shard i from.
func ReaderShardNode(r *Reader, i int) string {
	r.v.mu.Lock()
	page := r.v.mu.pages[0]
	r.v.mu.Unlock()
	p, err := r.v.part(0, page.parts[0]) // Open's first page is part 0
	if err != nil {
		return ""
	}
	s, _ := p.shard(i)
	return s.NodeId
}

// SetDatasetBatch sets how many members one entry of a dataset carries,
// so that tests make datasets of several entries from a few clips.
func SetDatasetBatch(n int) func() {
	old := datasetBatch
	datasetBatch = n
	return func() { datasetBatch = old }
}
