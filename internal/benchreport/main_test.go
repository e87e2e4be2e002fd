package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkEncode/4+2/codec-2         	      20	  10000000 ns/op	 6710.89 MB/s	     12 B/op	       0 allocs/op
BenchmarkEncode/4+2/codec-2         	      20	  12000000 ns/op	 5592.41 MB/s	     14 B/op	       0 allocs/op
BenchmarkEncode/4+2/reference-2     	      20	  10000000 ns/op	 6710.89 MB/s	      0 B/op	       0 allocs/op
BenchmarkShardWrite/grpc-2          	       5	 100000000 ns/op	  671.09 MB/s	69599289 B/op	    5818 allocs/op
BenchmarkShardWrite/file-2          	       5	  50000000 ns/op	 1342.18 MB/s	     200 B/op	       4 allocs/op
BenchmarkLonely/codec-2             	       5	  50000000 ns/op	 1342.18 MB/s	     200 B/op	       4 allocs/op
PASS
`

func TestParseAveragesAndPairs(t *testing.T) {
	res := parse(strings.NewReader(sample))
	enc := res["BenchmarkEncode/4+2/codec"]
	if enc.nsPerOp != 11000000 || enc.bytesPerOp != 13 {
		t.Fatalf("codec averaged to %+v", enc)
	}
	var out bytes.Buffer
	if err := report(&out, res); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"BenchmarkEncode/4+2/codec", "+10.0%", "BenchmarkShardWrite/grpc", "0.50", "+100.0%"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Lonely") {
		t.Errorf("a benchmark without its reference was paired:\n%s", text)
	}
}

func TestReportWithoutPairsFails(t *testing.T) {
	if err := report(&bytes.Buffer{}, parse(strings.NewReader("PASS\n"))); err == nil {
		t.Fatal("no pairs: want an error")
	}
}
