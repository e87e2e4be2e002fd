package main

import (
	"bytes"
	"io"
	"os"
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
BenchmarkCommitPut/clients=64-2     	    3000	    500000 ns/op	      2000 ops/s	         1.5 p50-ms	         9.0 p99-ms
PASS
`

func TestParseAveragesAndPairs(t *testing.T) {
	res := parse(strings.NewReader(sample))
	enc := res["BenchmarkEncode/4+2/codec"]
	if enc.nsPerOp != 11000000 || enc.bytesPerOp != 13 {
		t.Fatalf("codec averaged to %+v", enc)
	}
	if got := res["BenchmarkCommitPut/clients=64"].metrics; got["ops/s"] != 2000 || got["p99-ms"] != 9 {
		t.Fatalf("custom metrics parsed as %v", got)
	}
	rows, err := pairRows("codec", res)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printTable(&out, rows)
	text := out.String()
	for _, want := range []string{"| Encode/4+2 | 6152 MB/s | 6711 MB/s (reference) | 0.92 |", "| ShardWrite | 671 MB/s | 1342 MB/s (file) | 0.50 |"} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Lonely") {
		t.Errorf("a benchmark without its reference was paired:\n%s", text)
	}
}

func TestPairRowsWithoutPairsFails(t *testing.T) {
	if _, err := pairRows("codec", parse(strings.NewReader("PASS\n"))); err == nil {
		t.Fatal("no pairs: want an error")
	}
}

func TestTableCountsTargets(t *testing.T) {
	var rows []row
	for _, ratio := range []float64{0.7, 0.5} {
		r := row{area: "e2e", name: "put", ratio: ratio}
		r.target, r.ok = atLeast(ratio, 0.6)
		rows = append(rows, r)
	}
	var out bytes.Buffer
	printTable(&out, rows)
	for _, want := range []string{"| 0.70 | ≥ 0.60 ✅ |", "| 0.50 | ≥ 0.60 ❌ |", "Targets met: 1 of 2."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestPatternReader(t *testing.T) {
	for _, n := range []int64{0, 1, 1 << 20, 3<<20 + 17} {
		b, err := io.ReadAll(newPatternReader(n))
		if err != nil || int64(len(b)) != n {
			t.Fatalf("n=%d: read %d bytes, %v", n, len(b), err)
		}
		if n > 2<<20 && bytes.Equal(b[:1<<20], b[1<<20:2<<20]) {
			t.Fatalf("n=%d: the first two MiB are equal", n)
		}
	}
}

func TestReferences(t *testing.T) {
	dir := t.TempDir()
	if r, err := diskWriteRate(dir, 8<<20); err != nil || r <= 0 {
		t.Fatalf("diskWriteRate = %v, %v", r, err)
	}
	if r, err := loopbackTCPRate(16 << 20); err != nil || r <= 0 {
		t.Fatalf("loopbackTCPRate = %v, %v", r, err)
	}
	for _, publish := range []bool{false, true} {
		if r, err := smallFilesOpsPerSec(dir, 6, 16<<10, 2, 200e6, publish); err != nil || r <= 0 {
			t.Fatalf("smallFilesOpsPerSec(publish %v) = %v, %v", publish, r, err)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("the references left %d entries behind", len(left))
	}
}
