package meta

import (
	"errors"
	"strings"
	"testing"

	pb "github.com/clipstore/clipstore/proto/metapb"
)

// TestSealedSecrets: a sealed secret opens with the key it was sealed
// with, bound to its access key id, and with no other key.
func TestSealedSecrets(t *testing.T) {
	k1, err := secretsAEAD([]byte(strings.Repeat("a", 32)))
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := secretsAEAD([]byte(strings.Repeat("b", 32)))
	key := &pb.AccessKey{AccessKeyId: "CSAAAAAAAAAAAAAAAAAA", SealedSecret: sealSecret(k1, "CSAAAAAAAAAAAAAAAAAA", "the-secret")}
	if strings.Contains(string(key.SealedSecret), "the-secret") {
		t.Fatal("the sealed secret holds the secret")
	}
	if got, err := (&Node{secrets: k1}).openSecret(key); err != nil || got != "the-secret" {
		t.Fatalf("open: %q, %v", got, err)
	}
	for name, tc := range map[string]struct {
		n   *Node
		key *pb.AccessKey
	}{
		"another secrets key": {&Node{secrets: k2}, key},
		"no secrets key":      {&Node{}, key},
		"another key's id":    {&Node{secrets: k1}, &pb.AccessKey{AccessKeyId: "CSBBBBBBBBBBBBBBBBBB", SealedSecret: key.SealedSecret}},
		"truncated":           {&Node{secrets: k1}, &pb.AccessKey{AccessKeyId: key.AccessKeyId, SealedSecret: key.SealedSecret[:5]}},
	} {
		if _, err := tc.n.openSecret(tc.key); err == nil {
			t.Errorf("%s: the secret opened", name)
		} else if name != "truncated" && !errors.Is(err, ErrFailedPrecondition) {
			t.Errorf("%s: %v, want a failed precondition", name, err)
		}
	}
	// A key stored before secrets were sealed keeps working.
	if got, err := (&Node{secrets: k1}).openSecret(&pb.AccessKey{SecretAccessKey: "old"}); err != nil || got != "old" {
		t.Fatalf("legacy: %q, %v", got, err)
	}
}

func TestValidateGrants(t *testing.T) {
	for _, tc := range []struct {
		grants []*pb.Grant
		ok     bool
	}{
		{nil, true},
		{[]*pb.Grant{{Bucket: "*", Access: pb.Access_ACCESS_ADMIN}, {Bucket: "raw", Access: pb.Access_ACCESS_READ}}, true},
		{[]*pb.Grant{{Bucket: "Raw", Access: pb.Access_ACCESS_READ}}, false},
		{[]*pb.Grant{{Bucket: "raw"}}, false},
		{[]*pb.Grant{{Bucket: "raw", Access: 7}}, false},
	} {
		if err := ValidateGrants(tc.grants); (err == nil) != tc.ok {
			t.Errorf("%v: %v, want ok %v", tc.grants, err, tc.ok)
		}
	}
}
