package erasure

import (
	"errors"
	"strings"
	"testing"
)

func TestNewInvalidParams(t *testing.T) {
	tests := []struct {
		name string
		k, m int
		opts []Option
		want string // the parameter the error must name
	}{
		{"zero data", 0, 2, nil, "k=0"},
		{"negative data", -1, 2, nil, "k=-1"},
		{"negative parity", 4, -1, nil, "m=-1"},
		{"too many shards", 60, 5, nil, "k+m=65"},
		{"zero block", 4, 2, []Option{WithBlockSize(0)}, "block size 0"},
		{"negative block", 4, 2, []Option{WithBlockSize(-5)}, "block size -5"},
		{"huge block", 4, 2, []Option{WithBlockSize(MaxBlockSize + 1)}, "block size"},
		{"negative cache", 4, 2, []Option{WithBlockCache(-1)}, "block cache -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.k, tt.m, tt.opts...)
			if !errors.Is(err, ErrInvalidParams) {
				t.Fatalf("New(%d, %d) = %v, %v; want ErrInvalidParams", tt.k, tt.m, c, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %q", err, tt.want)
			}
		})
	}
}

func TestNewValid(t *testing.T) {
	tests := []struct {
		k, m, bs int
	}{
		{1, 0, 1}, {1, 2, 7}, {2, 0, 4096}, {10, 4, DefaultBlockSize}, {32, 32, 1000}, {63, 1, MaxBlockSize},
	}
	for _, tt := range tests {
		c, err := New(tt.k, tt.m, WithBlockSize(tt.bs))
		if err != nil {
			t.Fatalf("New(%d, %d, %d): %v", tt.k, tt.m, tt.bs, err)
		}
		if c.DataShards() != tt.k || c.ParityShards() != tt.m || c.Shards() != tt.k+tt.m || c.BlockSize() != tt.bs {
			t.Errorf("New(%d, %d, %d) accessors = %d %d %d %d", tt.k, tt.m, tt.bs,
				c.DataShards(), c.ParityShards(), c.Shards(), c.BlockSize())
		}
	}
	c, err := New(4, 2)
	if err != nil || c.BlockSize() != DefaultBlockSize {
		t.Fatalf("New(4, 2) = block size %d, %v; want the default", c.BlockSize(), err)
	}
}
