// Package await is clipstore's one bounded wait: poll a condition until it
// holds or a time limit passes, then say what it last reported. The
// end-to-end tests, the unit tests of meta, server and client, and the
// benchmark harness all wait through it; Poll needs no *testing.T, True and
// TrueWhy are its thin helpers for tests.
package await

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Interval is how often True and TrueWhy poll.
const Interval = 20 * time.Millisecond

// Poll calls cond every interval until it reports true, and returns nil
// then. It gives up with an error once limit has passed since the first
// call, or when ctx ends; the error carries cond's last reason (why), if
// it gave one. cond runs at least once.
func Poll(ctx context.Context, limit, interval time.Duration, cond func() (ok bool, why string)) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTimer(interval)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return &timeoutError{limit: limit, last: why}
		}
		tick.Reset(interval)
		select {
		case <-ctx.Done():
			if why == "" {
				return ctx.Err()
			}
			return fmt.Errorf("%w; last: %s", ctx.Err(), why)
		case <-tick.C:
		}
	}
}

type timeoutError struct {
	limit time.Duration
	last  string
}

func (e *timeoutError) Error() string {
	if e.last == "" {
		return fmt.Sprintf("timed out after %v", e.limit)
	}
	return fmt.Sprintf("timed out after %v; last: %s", e.limit, e.last)
}

// True fails t unless cond returns true within limit; what names the wait
// in the failure. It polls every Interval, for as long as t's context lives.
func True(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	TrueWhy(t, limit, what, func() (bool, string) { return cond(), "" })
}

// TrueWhy is True for a condition that also says why it does not hold yet:
// the failure quotes its last reason.
func TrueWhy(t testing.TB, limit time.Duration, what string, cond func() (ok bool, why string)) {
	t.Helper()
	if err := Poll(t.Context(), limit, Interval, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
