package await_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clipstore/clipstore/internal/await"
)

func TestPollReturnsOnceTrue(t *testing.T) {
	calls := 0
	err := await.Poll(t.Context(), time.Minute, time.Millisecond, func() (bool, string) {
		calls++
		return calls == 3, "not yet"
	})
	if err != nil || calls != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestPollTimesOutWithTheLastReason(t *testing.T) {
	calls := 0
	start := time.Now()
	err := await.Poll(t.Context(), 50*time.Millisecond, 5*time.Millisecond, func() (bool, string) {
		calls++
		return false, "call " + string(rune('0'+min(calls, 9)))
	})
	if err == nil || !strings.Contains(err.Error(), "timed out after 50ms; last: call") {
		t.Fatalf("Poll = %v, want a timeout naming the last reason", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || calls < 2 {
		t.Fatalf("gave up after %v and %d calls", d, calls)
	}
}

func TestPollStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	err := await.Poll(ctx, time.Hour, time.Millisecond, func() (bool, string) {
		calls++
		if calls == 2 {
			cancel()
		}
		return false, "still false"
	})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "still false") {
		t.Fatalf("Poll = %v, want context.Canceled with the last reason", err)
	}
}

func TestTrue(t *testing.T) {
	n := 0
	await.True(t, time.Minute, "the third call", func() bool { n++; return n == 3 })
	await.TrueWhy(t, time.Minute, "the sixth call", func() (bool, string) { n++; return n == 6, "" })
	if n != 6 {
		t.Fatalf("cond ran %d times, want 6", n)
	}
}

// fatalRecorder records Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) { r.msg = fmt.Sprintf(format, args...) }

func TestTrueWhyFailsNamingTheWait(t *testing.T) {
	r := &fatalRecorder{TB: t}
	await.TrueWhy(r, 30*time.Millisecond, "the impossible", func() (bool, string) { return false, "never" })
	if want := "waiting for the impossible: timed out after 30ms; last: never"; r.msg != want {
		t.Fatalf("failure %q, want %q", r.msg, want)
	}
}
