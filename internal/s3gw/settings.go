package s3gw

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/clipstore/clipstore/client"
	"golang.org/x/sync/singleflight"
)

// DefaultSettingsTTL is how long a gateway keeps a bucket's settings (its
// ETag mode) by default: how long after a change a gateway may go on with
// the old ones.
const DefaultSettingsTTL = 10 * time.Second

// settingsCache keeps the effective settings of buckets, read from meta,
// for a short while: a put does not ask meta for them each time, and every
// gateway behind one load balancer follows a change within the TTL.
type settingsCache struct {
	c     *client.Client
	ttl   time.Duration
	now   func() time.Time
	group singleflight.Group

	mu      sync.Mutex
	buckets map[string]cachedSettings
}

type cachedSettings struct {
	s       client.Settings
	expires time.Time
}

func newSettingsCache(c *client.Client, ttl time.Duration, now func() time.Time) *settingsCache {
	if ttl <= 0 {
		ttl = DefaultSettingsTTL
	}
	return &settingsCache{c: c, ttl: ttl, now: now, buckets: map[string]cachedSettings{}}
}

// get returns the bucket's effective settings. A bucket that does not
// exist is client.ErrNotFound (not cached).
func (sc *settingsCache) get(ctx context.Context, bucket string) (client.Settings, error) {
	sc.mu.Lock()
	c, ok := sc.buckets[bucket]
	sc.mu.Unlock()
	if ok && sc.now().Before(c.expires) {
		return c.s, nil
	}
	ch := sc.group.DoChan(bucket, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keyFetchTimeout)
		defer cancel()
		info, err := sc.c.Settings(fctx, bucket)
		if err != nil {
			return nil, err
		}
		sc.mu.Lock()
		defer sc.mu.Unlock()
		if len(sc.buckets) >= maxCachedKeys {
			clear(sc.buckets)
		}
		sc.buckets[bucket] = cachedSettings{s: info.Effective, expires: sc.now().Add(sc.ttl)}
		return info.Effective, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return client.Settings{}, res.Err
		}
		return res.Val.(client.Settings), nil
	case <-ctx.Done():
		return client.Settings{}, ctx.Err()
	}
}

// fastETags reports whether the request's bucket has fast ETags.
func (g *Gateway) fastETags(req *request) (bool, error) {
	s, err := g.settings.get(req.Context(), req.bucket)
	if errors.Is(err, client.ErrNotFound) {
		return false, errNoSuchBucket
	}
	if err != nil {
		return false, err
	}
	return s.ETagMode == client.ETagModeFast, nil
}

// newFastPartETag is a part's ETag in the fast mode: random, so that a
// part uploaded again has another, with a "-1" that tells clients (s3cmd,
// rclone) it is no MD5 to check.
func newFastPartETag() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-1"
}

// fastObjectETag is a multipart object's ETag in the fast mode: its clip
// id, with the number of parts as S3 gives it.
func fastObjectETag(clipID string, parts int) string { return fmt.Sprintf("%s-%d", clipID, parts) }
