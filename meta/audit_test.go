package meta_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/meta/metatest"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/protobuf/proto"
)

// lockedBuffer is a bytes.Buffer for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAuditLog: every admin action and every refused call is one JSON
// record saying what was asked, by whom and with what outcome; reads are
// not recorded, and no secret ever is.
func TestAuditLog(t *testing.T) {
	var buf lockedBuffer
	c := metatest.New(t, 1, metatest.Options{Configure: func(cfg *meta.Config) {
		cfg.Audit = slog.New(slog.NewJSONHandler(&buf, nil))
		cfg.SecretsKey = []byte("a-secrets-key-for-the-audit-test-32-bytes")
	}})
	cl := c.Members[0].Client
	ctx := t.Context()
	if _, err := cl.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "audited"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateBucket(ctx, &pb.CreateBucketRequest{Name: "audited"}); err == nil {
		t.Fatal("a bucket created twice")
	}
	key, err := cl.CreateAccessKey(ctx, &pb.CreateAccessKeyRequest{Name: "ingest", Grants: []*pb.Grant{{Bucket: "audited", Access: pb.Access_ACCESS_WRITE}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.RepairLimits(ctx, &pb.RepairLimitsRequest{Concurrency: proto.Uint32(3)}); err != nil {
		t.Fatal(err)
	}
	for range 3 { // reads: not recorded
		if _, err := cl.ListBuckets(ctx, &pb.ListBucketsRequest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.RepairLimits(ctx, &pb.RepairLimitsRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	// No cluster secret: refused, and recorded.
	if _, err := cl.SigningKey(ctx, &pb.SigningKeyRequest{AccessKeyId: key.Key.AccessKeyId, Date: "20261205", Region: "us-east-1", Service: "s3"}); err == nil {
		t.Fatal("a signing key without the cluster secret")
	}

	log := buf.String()
	if strings.Contains(log, key.Key.SecretAccessKey) {
		t.Fatal("the audit log holds a secret")
	}
	type record struct {
		Msg, Method, Outcome, Bucket, Name, Grants, Caller string
		AccessKeyID                                        string `json:"access_key_id"`
		Concurrency                                        uint32
	}
	var got []record
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if r.Caller == "" {
			t.Errorf("no caller in %q", line)
		}
		got = append(got, r)
	}
	want := []record{
		{Msg: "admin action", Method: "CreateBucket", Outcome: "OK", Bucket: "audited"},
		{Msg: "admin action", Method: "CreateBucket", Outcome: "AlreadyExists", Bucket: "audited"},
		{Msg: "admin action", Method: "CreateAccessKey", Outcome: "OK", Name: "ingest", Grants: "audited:write"},
		{Msg: "admin action", Method: "RepairLimits", Outcome: "OK", Concurrency: 3},
		{Msg: "denied", Method: "SigningKey", Outcome: "PermissionDenied", AccessKeyID: key.Key.AccessKeyId},
	}
	if len(got) != len(want) {
		t.Fatalf("%d audit records, want %d:\n%s", len(got), len(want), log)
	}
	for i := range want {
		g := got[i]
		g.Caller = ""
		if g != want[i] {
			t.Errorf("record %d: %+v, want %+v", i, g, want[i])
		}
	}
}
