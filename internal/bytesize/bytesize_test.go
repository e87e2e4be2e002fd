package bytesize_test

import (
	"slices"
	"testing"

	"github.com/clipstore/clipstore/internal/bytesize"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "4096", want: 4096},
		{in: "12B", want: 12},
		{in: "64KiB", want: 64 << 10},
		{in: "1MiB", want: 1 << 20},
		{in: "8MiB", want: 8 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "1KB", want: 1000},
		{in: "1MB", want: 1_000_000},
		{in: "3GB", want: 3_000_000_000},
		{in: "8mib", want: 8 << 20},
		{in: " 8 MiB ", want: 8 << 20},
		{in: "", bad: true},
		{in: "MiB", bad: true},
		{in: "-1", bad: true},
		{in: "1.5MiB", bad: true},
		{in: "8XB", bad: true},
		{in: "10000000TiB", bad: true},
		{in: "0x10", bad: true},
	} {
		got, err := bytesize.Parse(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("Parse(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseList(t *testing.T) {
	got, err := bytesize.ParseList("64KiB, 1MiB,8MiB,64MiB")
	if want := []int64{64 << 10, 1 << 20, 8 << 20, 64 << 20}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("ParseList = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "1MiB,", "1MiB,x"} {
		if _, err := bytesize.ParseList(bad); err == nil {
			t.Errorf("ParseList(%q): no error", bad)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0B"}, {1000, "1000B"}, {1024, "1KiB"}, {64 << 10, "64KiB"}, {1<<20 + 1, "1048577B"},
		{8 << 20, "8MiB"}, {3 << 30, "3GiB"}, {1536 << 10, "1536KiB"},
	} {
		got := bytesize.Format(tc.in)
		if got != tc.want {
			t.Errorf("Format(%d) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := bytesize.Parse(got); err != nil || back != tc.in {
			t.Errorf("Parse(Format(%d)) = %d, %v", tc.in, back, err)
		}
	}
}

func TestHuman(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0 B"}, {1, "1 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {64 << 10, "64.0 KiB"}, {100_000, "97.7 KiB"},
		{1 << 20, "1.0 MiB"}, {3 << 19, "1.5 MiB"}, {5_000_000, "4.8 MiB"}, {1 << 30, "1.0 GiB"}, {252 << 30, "252.0 GiB"},
		{3 << 40, "3.0 TiB"}, {1 << 60, "1.0 EiB"},
	} {
		if got := bytesize.Human(tc.in); got != tc.want {
			t.Errorf("Human(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
