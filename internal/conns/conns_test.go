package conns_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/conns"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs a gRPC server with the health service on lis until the
// returned function stops it.
func serve(lis net.Listener) func() {
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	done := make(chan struct{})
	go func() {
		s.Serve(lis)
		close(done)
	}()
	return func() {
		s.Stop()
		<-done
	}
}

func check(ctx context.Context, cc *grpc.ClientConn, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// TestReconnectsSoon: a server that was down for a while (long enough for
// gRPC's default backoff to reach several seconds) is reachable through the
// cache within about MaxReconnectDelay of coming back.
func TestReconnectsSoon(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	c := conns.New(grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer c.Close()
	cc, err := c.Get(addr)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.Get(addr); again != cc {
		t.Fatal("a second Get made a second connection")
	}
	cc.Connect()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if err := check(t.Context(), cc, 100*time.Millisecond); err == nil {
			t.Fatal("a call to a closed port succeeded")
		}
	}
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	stop := serve(lis)
	defer stop()
	start := time.Now()
	for check(t.Context(), cc, 50*time.Millisecond) != nil {
		if time.Since(start) > 3*conns.MaxReconnectDelay {
			t.Fatalf("not reconnected %v after the server came back", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("reconnected %v after the server came back", time.Since(start).Round(time.Millisecond))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(addr); !errors.Is(err, conns.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}
