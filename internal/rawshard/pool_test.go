package rawshard

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// fakeNode accepts connections on loopback and answers the handshake as
// answer says (nil: closes without answering); it counts the connections.
func fakeNode(t *testing.T, answer []byte) (addr string, accepted *atomic.Int32, conns chan net.Conn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	accepted, conns = new(atomic.Int32), make(chan net.Conn, 16)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			t.Cleanup(func() { c.Close() })
			magic := make([]byte, len(Magic))
			if _, err := io.ReadFull(c, magic); err != nil || answer == nil {
				c.Close()
				continue
			}
			c.Write(answer)
			conns <- c
		}
	}()
	return lis.Addr().String(), accepted, conns
}

// TestPool: a pool dials, keeps what the node serves, hands an idle
// connection back out only for a kind the node serves, remembers a node
// that refused a kind (no dial until retryAfter), and tells a connection
// the node closed from an open one.
func TestPool(t *testing.T) {
	ctx := t.Context()
	readsOnly, accepted, conns := fakeNode(t, Hello(ServesReads))
	p := NewPool(ServesReads | ServesWrites)
	defer p.Close()

	c, reused, err := p.Get(ctx, readsOnly, ServesReads, false)
	if err != nil || reused || c.Serves != ServesReads {
		t.Fatalf("first read connection: %v, reused %v, %v", c, reused, err)
	}
	server := <-conns
	if !c.Alive() {
		t.Fatal("an open idle connection is not alive")
	}
	p.Put(readsOnly, c)
	if _, _, err := p.Get(ctx, readsOnly, ServesWrites, false); !errors.Is(err, ErrNoRaw) {
		t.Fatalf("a write to a node that serves reads only: %v, want ErrNoRaw", err)
	}
	again, reused, err := p.Get(ctx, readsOnly, ServesReads, false)
	if err != nil || !reused || again != c {
		t.Fatalf("the idle connection was not reused: %v, %v", reused, err)
	}
	server.Close()
	deadline := time.Now().Add(5 * time.Second)
	for again.Alive() {
		if time.Now().After(deadline) {
			t.Fatal("a connection its node closed is still alive")
		}
		time.Sleep(5 * time.Millisecond)
	}
	again.Close()
	if n := accepted.Load(); n != 1 {
		t.Fatalf("%d connections dialed, want 1", n)
	}
	fresh, reused, err := p.Get(ctx, readsOnly, ServesReads, true)
	if err != nil || reused {
		t.Fatalf("a fresh connection: reused %v, %v", reused, err)
	}
	fresh.Close()

	// A node that does not answer the handshake: both kinds refused, and
	// not dialed again meanwhile.
	old, oldAccepted, _ := fakeNode(t, nil)
	for _, kind := range []byte{ServesReads, ServesWrites, ServesReads} {
		if _, _, err := p.Get(ctx, old, kind, false); !errors.Is(err, ErrNoRaw) {
			t.Fatalf("kind %d from a node without raw transfers: %v, want ErrNoRaw", kind, err)
		}
	}
	if n := oldAccepted.Load(); n != 1 {
		t.Fatalf("a refusing node was dialed %d times, want 1", n)
	}

	// A pool for reads only asks for nothing else; a nil pool, nothing.
	readers := NewPool(ServesReads)
	if _, _, err := readers.Get(ctx, readsOnly, ServesWrites, false); !errors.Is(err, ErrNoRaw) {
		t.Fatalf("a write from a reads-only pool: %v", err)
	}
	var none *Pool
	if _, _, err := none.Get(ctx, readsOnly, ServesReads, false); !errors.Is(err, ErrNoRaw) {
		t.Fatalf("a nil pool: %v", err)
	}
	readers.Close()
	if _, _, err := readers.Get(ctx, readsOnly, ServesReads, false); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("a closed pool: %v, want ErrPoolClosed", err)
	}
}
