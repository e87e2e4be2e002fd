package client

// ListPages lists with a given page size, so that tests can page through
// a listing without storing thousands of clips.
var ListPages = (*Client).list

// ReaderShardNode is the node a Reader reads shard i from.
func ReaderShardNode(r *Reader, i int) string {
	s, _ := r.v.shard(i)
	return s.NodeId
}
