package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clipstore/clipstore/test/e2e"
)

// testFind: clips put with capture flags (one by one, and a directory with
// -r, where every file gets them) are found by vehicle, camera, tag and
// time, in capture order; ls --json and stat show the attributes; a bad
// time is one readable line and changes nothing.
func testFind(t *testing.T, c *e2e.Cluster) {
	if _, errOut, code := c.CLI("mb", "capture"); code != 0 {
		t.Fatalf("mb: %s", errOut)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "clip.mp4")
	if err := os.WriteFile(file, e2e.ClipBytes(1, 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	put := func(key string, args ...string) {
		t.Helper()
		if _, errOut, code := c.CLI(append([]string{"put", "capture/" + key, file}, args...)...); code != 0 {
			t.Fatalf("put %s: %s", key, errOut)
		}
	}
	put("v17/front/b.mp4", "--vehicle", "v17", "--camera", "front", "--start", "2026-11-30T08:10:00Z", "--end", "2026-11-30T08:11:00Z", "--tag", "rain")
	put("v17/front/a.mp4", "--vehicle", "v17", "--camera", "front", "--start", "2026-11-30T08:00:00Z", "--end", "2026-11-30T08:01:00Z", "--tag", "rain", "--tag", "night")
	put("v17/rear/a.mp4", "--vehicle", "v17", "--camera", "rear", "--start", "2026-11-30T08:00:00Z", "--end", "2026-11-30T08:01:00Z")
	put("v18/front/a.mp4", "--vehicle", "v18", "--camera", "front", "--start", "2026-11-30T09:00:00Z", "--end", "2026-11-30T09:01:00Z", "--tag", "rain")
	put("plain.mp4")
	tree := filepath.Join(dir, "tree")
	for _, name := range []string{"x.mp4", "y.mp4"} {
		if err := os.MkdirAll(tree, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, name), e2e.ClipBytes(2, 3000), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, errOut, code := c.CLI("put", "-r", tree, "capture/v20", "--vehicle", "v20", "--start", "2026-11-30T07:00:00Z", "--tag", "fog"); code != 0 {
		t.Fatalf("put -r: %s", errOut)
	}

	find := func(args ...string) []string {
		t.Helper()
		out, errOut, code := c.CLI(append([]string{"find", "capture", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("find %v: %s", args, errOut)
		}
		var keys []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			var e struct {
				Key     string `json:"key"`
				Capture struct {
					Vehicle string `json:"vehicle_id"`
				} `json:"capture"`
			}
			if err := json.Unmarshal([]byte(line), &e); err != nil || e.Capture.Vehicle == "" {
				t.Fatalf("find --json line %q: %v (no capture)", line, err)
			}
			keys = append(keys, e.Key)
		}
		return keys
	}
	for _, tc := range []struct {
		args []string
		want []string // in capture order; v20's two clips start at once (-r): either order
	}{
		{[]string{"--vehicle", "v17", "--camera", "front"}, []string{"v17/front/a.mp4", "v17/front/b.mp4"}},
		{[]string{"--tag", "rain"}, []string{"v17/front/a.mp4", "v17/front/b.mp4", "v18/front/a.mp4"}},
		{[]string{"--tag", "rain", "--tag", "night"}, []string{"v17/front/a.mp4"}},
		{[]string{"--vehicle", "v17", "--vehicle", "v18", "--from", "2026-11-30T08:30:00Z"}, []string{"v18/front/a.mp4"}},
		{[]string{"--to", "2026-11-30T07:30:00Z"}, []string{"v20/x.mp4", "v20/y.mp4"}},
		{[]string{"--vehicle", "v20", "--tag", "fog"}, []string{"v20/x.mp4", "v20/y.mp4"}},
		{[]string{"--prefix", "v17/rear"}, []string{"v17/rear/a.mp4"}},
		{[]string{"--vehicle", "nobody"}, nil},
	} {
		got := find(tc.args...)
		if len(got) == 2 && strings.HasPrefix(got[0], "v20/") {
			slices.Sort(got) // a tie in capture start: clip ids order them
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("find %v: %v, want %v", tc.args, got, tc.want)
		}
	}
	out, _, _ := c.CLI("ls", "capture/v17/rear", "--json")
	if !strings.Contains(out, `"vehicle_id":"v17"`) || !strings.Contains(out, `"camera":"rear"`) {
		t.Errorf("ls --json lacks the capture attributes: %s", out)
	}
	if _, errOut, code := c.CLI("put", "capture/bad.mp4", file, "--start", "yesterday"); code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 ||
		!strings.Contains(errOut, "RFC 3339") {
		t.Errorf("a bad --start: exit %d: %q", code, errOut)
	}
	if _, _, code := c.CLI("stat", "capture/bad.mp4"); code == 0 {
		t.Error("a put refused for a bad time stored something")
	}
}
