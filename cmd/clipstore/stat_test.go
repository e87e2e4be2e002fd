package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/client"
)

// sampleMultipartClip is a clip completed from three parts through the S3
// gateway, with a COMPOSITE CRC32 and capture attributes.
func sampleMultipartClip() *client.ClipInfo {
	created := time.Date(2024, 5, 1, 14, 0, 0, 0, time.UTC)
	return &client.ClipInfo{Bucket: "fleet", Key: "cam/front.mp4", ClipID: "0f1e", Generation: 7, Size: 20<<20 + 5,
		CRC32C: 0xdeadbeef, ContentType: "video/mp4", Created: created,
		ETag: "0123456789abcdef0123456789abcdef-3", Checksums: map[string]string{"crc32": "AAAAAA==-3"},
		Capture: &client.Capture{VehicleID: "veh-0042", Camera: "front-left", Start: created.Add(-time.Minute),
			Tags: []string{"rain", "night"}},
		Profile: client.Profile{DataShards: 4, ParityShards: 2, BlockSize: 1 << 20},
		Shards:  []client.ShardInfo{{Index: 0, Node: "s0", ID: "aa", State: client.ShardOK}},
		Parts: []client.PartInfo{
			{Number: 1, Offset: 0, Size: 8 << 20, ETag: "11111111111111111111111111111111", Checksums: map[string]string{"crc32": "AQIDBA=="}},
			{Number: 2, Offset: 8 << 20, Size: 8 << 20, ETag: "22222222222222222222222222222222", Checksums: map[string]string{"crc32": "BQYHCA=="}},
			{Number: 5, Offset: 16 << 20, Size: 4<<20 + 5, ETag: "55555555555555555555555555555555"},
		}}
}

func TestStatText(t *testing.T) {
	var buf bytes.Buffer
	writeClipText(&buf, sampleMultipartClip())
	out := buf.String()
	for _, want := range []string{
		"etag        0123456789abcdef0123456789abcdef-3\n",
		"crc32       AAAAAA==-3\n",
		"capture     vehicle veh-0042, camera front-left, 2024-05-01T13:59:00Z to -, tags rain,night\n",
		"parts       3\n",
		"part 1      offset 0, size 8388608 (8.0 MiB), etag 11111111111111111111111111111111, crc32 AQIDBA==\n",
		"part 2      offset 8388608, size 8388608 (8.0 MiB), etag 22222222222222222222222222222222, crc32 BQYHCA==\n",
		"part 5      offset 16777216, size 4194309 (4.0 MiB), etag 55555555555555555555555555555555\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stat lacks %q:\n%s", want, out)
		}
	}

	whole := sampleMultipartClip()
	whole.ETag, whole.Checksums, whole.Capture = "", nil, nil
	whole.Parts = []client.PartInfo{{Number: 0, Size: whole.Size}}
	buf.Reset()
	writeClipText(&buf, whole)
	for _, absent := range []string{"etag", "part", "capture", "crc32 "} {
		if strings.Contains(buf.String(), absent) {
			t.Errorf("stat of a clip written whole, without ETag or capture, shows %q:\n%s", absent, buf.String())
		}
	}
}

func TestStatJSON(t *testing.T) {
	b, err := json.Marshal(clipJSON(sampleMultipartClip()))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ETag      string            `json:"etag"`
		Checksums map[string]string `json:"checksums"`
		Capture   struct {
			VehicleID string   `json:"vehicle_id"`
			Start     string   `json:"start"`
			End       *string  `json:"end"`
			Tags      []string `json:"tags"`
		} `json:"capture"`
		Parts []struct {
			Number    int               `json:"number"`
			Offset    int64             `json:"offset"`
			Size      int64             `json:"size"`
			ETag      string            `json:"etag"`
			Checksums map[string]string `json:"checksums"`
		} `json:"parts"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	switch {
	case got.ETag != "0123456789abcdef0123456789abcdef-3" || got.Checksums["crc32"] != "AAAAAA==-3":
		t.Errorf("etag %q, checksums %v", got.ETag, got.Checksums)
	case got.Capture.VehicleID != "veh-0042" || got.Capture.Start != "2024-05-01T13:59:00Z" || got.Capture.End != nil ||
		strings.Join(got.Capture.Tags, ",") != "rain,night":
		t.Errorf("capture %+v", got.Capture)
	case len(got.Parts) != 3:
		t.Fatalf("parts %+v", got.Parts)
	case got.Parts[1].Number != 2 || got.Parts[1].Offset != 8<<20 || got.Parts[1].Size != 8<<20 ||
		got.Parts[1].ETag != "22222222222222222222222222222222" || got.Parts[1].Checksums["crc32"] != "BQYHCA==":
		t.Errorf("part 2: %+v", got.Parts[1])
	case got.Parts[2].Number != 5 || got.Parts[2].Checksums == nil:
		t.Errorf("part 5 (no checksum: {}, not null): %+v", got.Parts[2])
	}
	if !strings.Contains(string(b), `"checksums":{}`) {
		t.Errorf("a part without checksums is not {}: %s", b)
	}
}
