package meta

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/clipstore/clipstore/erasure"
	pb "github.com/clipstore/clipstore/proto/metapb"
)

// Limits on what clients may store.
const (
	MaxKeyLen          = 1024
	MaxUserMetadata    = 8 << 10           // bytes of keys and values together
	MaxShards          = erasure.MaxShards // the codec's limit on k+m
	MaxBlockSize       = 16 << 20
	maxTags            = 64
	maxAttributeLength = 256
)

// ValidateBucketName checks a bucket name as S3 does: 3-63 characters of
// a-z 0-9 . -, starting and ending with a letter or digit, no "..".
func ValidateBucketName(name string) error {
	if len(name) < 3 || len(name) > 63 {
		return fmt.Errorf("%w: bucket name %q must be 3 to 63 characters long", ErrInvalidArgument, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("%w: bucket name %q may contain only a-z, 0-9, '.' and '-'", ErrInvalidArgument, name)
		}
	}
	if !isAlnum(name[0]) || !isAlnum(name[len(name)-1]) {
		return fmt.Errorf("%w: bucket name %q must start and end with a letter or digit", ErrInvalidArgument, name)
	}
	if strings.Contains(name, "..") {
		return fmt.Errorf("%w: bucket name %q must not contain \"..\"", ErrInvalidArgument, name)
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// ValidateKey checks a clip key: 1-1024 bytes of valid UTF-8 without NUL.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: key must not be empty", ErrInvalidArgument)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: key of %d bytes exceeds %d", ErrInvalidArgument, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key is not valid UTF-8", ErrInvalidArgument)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("%w: key contains a NUL byte", ErrInvalidArgument)
	}
	return nil
}

// ValidateProfile checks an EC profile against what package erasure and
// the storage nodes support.
func ValidateProfile(p *pb.ECProfile) error {
	k, m, bs := p.GetDataShards(), p.GetParityShards(), p.GetBlockSize()
	switch {
	case k < 1:
		return fmt.Errorf("%w: EC profile needs at least 1 data shard, got %d", ErrInvalidArgument, k)
	case k+m > MaxShards:
		return fmt.Errorf("%w: EC profile %d+%d has more than %d shards", ErrInvalidArgument, k, m, MaxShards)
	case bs < 1 || bs > MaxBlockSize:
		return fmt.Errorf("%w: block size %d outside 1..%d", ErrInvalidArgument, bs, MaxBlockSize)
	}
	return nil
}

func validateUserMetadata(md map[string]string, c *pb.CaptureAttributes) error {
	total := 0
	for k, v := range md {
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%w: user metadata keys must be non-empty UTF-8, values UTF-8", ErrInvalidArgument)
		}
		total += len(k) + len(v)
	}
	if total > MaxUserMetadata {
		return fmt.Errorf("%w: user metadata of %d bytes exceeds %d", ErrInvalidArgument, total, MaxUserMetadata)
	}
	if c == nil {
		return nil
	}
	if len(c.Tags) > maxTags {
		return fmt.Errorf("%w: %d capture tags exceed %d", ErrInvalidArgument, len(c.Tags), maxTags)
	}
	for _, s := range append([]string{c.VehicleId, c.Camera}, c.Tags...) {
		if len(s) > maxAttributeLength || !utf8.ValidString(s) {
			return fmt.Errorf("%w: capture attribute %q: at most %d bytes of UTF-8", ErrInvalidArgument, s, maxAttributeLength)
		}
	}
	if c.EndUnixNano != 0 && c.EndUnixNano < c.StartUnixNano {
		return fmt.Errorf("%w: capture ends before it starts", ErrInvalidArgument)
	}
	return nil
}

// Bounds of what a commit may store of the client's ETag and checksums.
const (
	maxETag      = 128
	maxChecksums = 8
	maxChecksum  = 128
)

// validateChecksums checks the ETag and checksums a commit stores: short
// printable ASCII, a few algorithms.
func validateChecksums(etag string, sums map[string]string) error {
	if len(sums) > maxChecksums {
		return fmt.Errorf("%w: %d checksums exceed %d", ErrInvalidArgument, len(sums), maxChecksums)
	}
	check := func(what, s string) error {
		if len(s) > maxChecksum {
			return fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrInvalidArgument, what, len(s), maxChecksum)
		}
		for _, r := range s {
			if r < 0x21 || r > 0x7e {
				return fmt.Errorf("%w: %s %q: printable ASCII only", ErrInvalidArgument, what, s)
			}
		}
		return nil
	}
	if len(etag) > maxETag {
		return fmt.Errorf("%w: ETag of %d bytes exceeds %d", ErrInvalidArgument, len(etag), maxETag)
	}
	if err := check("ETag", etag); err != nil {
		return err
	}
	for alg, v := range sums {
		if alg == "" {
			return fmt.Errorf("%w: a checksum without an algorithm name", ErrInvalidArgument)
		}
		if err := check("checksum algorithm", alg); err != nil {
			return err
		}
		if err := check("checksum", v); err != nil {
			return err
		}
	}
	return nil
}

// validateID checks a 16-byte random id.
func validateID(what string, id []byte) error {
	if len(id) != 16 {
		return fmt.Errorf("%w: %s must be 16 bytes, got %d", ErrInvalidArgument, what, len(id))
	}
	return nil
}

// validateNodeID checks a storage node or member id.
func validateNodeID(id string) error {
	if id == "" || len(id) > 128 || !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0 {
		return fmt.Errorf("%w: node id %q must be 1-128 bytes of UTF-8 without NUL", ErrInvalidArgument, id)
	}
	return nil
}
