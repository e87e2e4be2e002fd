package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
)

func TestParseThreshold(t *testing.T) {
	cases := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"", 0, false}, {"5%", 0.05, false}, {"0.1", 0.1, false}, {"100%", 1, false},
		{"0", 0, true}, {"-5%", 0, true}, {"150%", 0, true}, {"five", 0, true},
	}
	for _, c := range cases {
		got, err := parseThreshold(c.in)
		if (err != nil) != c.wantErr || (err == nil && got != c.want) {
			t.Errorf("parseThreshold(%q) = %v, %v; want %v, error %v", c.in, got, err, c.want, c.wantErr)
		}
	}
}

func TestWriteRebalance(t *testing.T) {
	now := time.Now()
	st := &client.RebalanceStatus{Running: true, Threshold: 0.05, StartedAt: now.Add(-time.Minute), StartedBy: "storage node s7 joined",
		Mean: 0.5, SpreadBefore: 0.25, SpreadAfter: 0.02, PlannedMoves: 10, PlannedBytes: 10 << 20, ExcessBytes: 9 << 20,
		MovesInFlight: 2, BytesInFlight: 2 << 20, MovedBytes: 3 << 20,
		Nodes: []client.NodeBalance{{ID: "s7", Capacity: 100 << 20, PlacedBytes: 25 << 20, BytesIn: 25 << 20, UsedBefore: 0.25, UsedAfter: 0.5}}}
	var out bytes.Buffer
	if err := writeRebalance(&out, st, false, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rebalance running since 1m0s ago (storage node s7 joined), threshold 5.0%",
		"mean fill 50.0%, spread 25.0 points -> 2.0 after the plan; 10 moves, 10.0 MiB planned (excess over the mean 9.0 MiB)",
		"2 moves (2.0 MiB) in flight, 3.0 MiB moved", "s7    100.0 MiB  25.0 MiB  25.0%  25.0 MiB  0 B  50.0%"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
