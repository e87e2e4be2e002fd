package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/clipstore/clipstore/client"
)

// These examples need a running cluster (`clipstore dev`), so they are
// compiled but not run.

func ExampleNew() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Meta: []string{"127.0.0.1:7400"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	st, err := c.ClusterStatus(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("leader:", st.Leader, "storage nodes up:", st.NodesUp)
}

func ExampleClient_Put() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Meta: []string{"127.0.0.1:7400"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	f, err := os.Open("front-camera.mp4")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	// The clip streams through the erasure coder; its length need not be known.
	info, err := c.Put(ctx, "fleet-clips", "car-17/2026-05-01/front.mp4", f, &client.PutOptions{
		ContentType: "video/mp4",
		Capture:     &client.Capture{VehicleID: "car-17", Camera: "front"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("stored %d bytes as generation %d (crc32c %08x)\n", info.Size, info.Generation, info.CRC32C)
}

func ExampleClient_Get() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Meta: []string{"127.0.0.1:7400"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var buf bytes.Buffer
	_, err = c.Get(ctx, "fleet-clips", "car-17/2026-05-01/front.mp4", &buf, nil)
	switch {
	case errors.Is(err, client.ErrNotFound):
		fmt.Println("no such clip")
	case errors.Is(err, client.ErrUnrecoverable):
		fmt.Println("too many shards lost")
	case err != nil:
		log.Fatal(err)
	}
}

func ExampleClient_Open() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Meta: []string{"127.0.0.1:7400"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	r, err := c.Open(ctx, "fleet-clips", "car-17/2026-05-01/front.mp4")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	// Only the blocks and pieces holding these 4 KiB are fetched.
	head := make([]byte, 4096)
	if _, err := r.ReadAt(head, 1<<20); err != nil && err != io.EOF {
		log.Fatal(err)
	}
	fmt.Println(r.Info().Size)
}

func ExampleClient_List() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Meta: []string{"127.0.0.1:7400"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for e, err := range c.List(ctx, "fleet-clips", "car-17/") {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Key, e.Size)
	}
}
