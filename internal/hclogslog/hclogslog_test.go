package hclogslog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

type server struct{ ID, Addr string }

func TestLevelsArgsAndNames(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.Debug("hidden")
	l.Named("raft").With("member", "m1").Info("entering leader state",
		"leader", server{"m1", "127.0.0.1:1"}, "servers", hclog.Fmt("%d voters", 3), "term", uint64(7))
	l.Error("boom", "error", "disk full")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (debug filtered), got %d:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"msg": "entering leader state", "logger": "raft", "member": "m1",
		"leader": "{ID:m1 Addr:127.0.0.1:1}", "servers": "3 voters", "term": float64(7), "level": "INFO"}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v", k, rec[k], v)
		}
	}
	if !l.IsInfo() || l.IsDebug() || l.GetLevel() != hclog.Info {
		t.Errorf("levels: info %v debug %v level %v", l.IsInfo(), l.IsDebug(), l.GetLevel())
	}
}
