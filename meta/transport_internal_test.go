package meta

import (
	"errors"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestTransportDoesNotPipeline: meta's Raft transport replicates one
// AppendEntries at a time, so that hashicorp/raft's pipeline deadlock
// (see newTCPTransport) cannot happen.
func TestTransportDoesNotPipeline(t *testing.T) {
	trans, err := newTCPTransport("127.0.0.1:0", hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer trans.Close()
	p, err := trans.AppendEntriesPipeline("peer", trans.LocalAddr())
	if !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		if p != nil {
			p.Close()
		}
		t.Fatalf("AppendEntriesPipeline = %v, %v; want ErrPipelineReplicationNotSupported", p, err)
	}
}
