package meta

import (
	"bytes"
	"crypto/sha256"

	bolt "go.etcd.io/bbolt"
)

// StateDigest returns a SHA-256 over every replicated key and value of the
// FSM (all buckets but the local applied index), and the applied index it
// was taken at. Members that applied the same entries have equal digests:
// the analogue of etcd's HashKV, for tests and consistency checks.
func (n *Node) StateDigest() (digest []byte, applied uint64, err error) {
	h := sha256.New()
	err = n.fsm.view(func(tx *bolt.Tx) error {
		applied = appliedIndex(tx)
		for _, name := range allBuckets {
			if bytes.Equal(name, bktMeta) {
				continue
			}
			h.Write(name)
			err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				h.Write(be64(uint64(len(k))))
				h.Write(k)
				h.Write(be64(uint64(len(v))))
				h.Write(v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return h.Sum(nil), applied, err
}
