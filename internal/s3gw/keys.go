package s3gw

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/sigv4"
	"golang.org/x/sync/singleflight"
)

// KeyFunc gives an access key's signing key for one credential scope,
// with what the key may do; an unknown key is sigv4.ErrUnknownAccessKey.
type KeyFunc func(ctx context.Context, accessKey, date, region, service string) (client.SigningKey, error)

// ClientKeys is a KeyFunc that asks meta for signing keys through c
// (which must carry the cluster secret).
func ClientKeys(c *client.Client) KeyFunc {
	return func(ctx context.Context, accessKey, date, region, service string) (client.SigningKey, error) {
		key, err := c.SigningKey(ctx, accessKey, date, region, service)
		if errors.Is(err, client.ErrNotFound) {
			return key, fmt.Errorf("%w: %w", sigv4.ErrUnknownAccessKey, err)
		}
		return key, err
	}
}

// DefaultKeyTTL is how long a KeyCache keeps a signing key by default: how
// long a deleted access key may go on working at a gateway.
const DefaultKeyTTL = 10 * time.Minute

// maxCachedKeys bounds a KeyCache; past it, expired keys are dropped, and
// if none are, all of them.
const maxCachedKeys = 10000

// keyFetchTimeout bounds one fetch of a key shared by concurrent requests.
const keyFetchTimeout = 30 * time.Second

// KeyCache caches the signing keys (and grants) a KeyFunc (ClientKeys) gives, by access
// key and credential scope (date, region, service): a scope's key changes
// with its date, so a new day's requests fetch a new key, and each key is
// kept at most TTL, so that a deleted access key stops working within
// that, and a change of its grants takes effect within that. Concurrent requests for a key not cached share one fetch. Errors
// are not cached.
type KeyCache struct {
	fetch KeyFunc
	ttl   time.Duration
	now   func() time.Time
	group singleflight.Group

	mu struct {
		sync.Mutex
		keys map[keyScope]cachedKey
	}
}

type keyScope struct {
	accessKey, date, region, service string
}

type cachedKey struct {
	key     client.SigningKey
	expires time.Time
}

// NewKeyCache returns a cache over fetch that keeps keys for ttl
// (DefaultKeyTTL if 0), by the clock now (time.Now if nil).
func NewKeyCache(fetch KeyFunc, ttl time.Duration, now func() time.Time) *KeyCache {
	if ttl <= 0 {
		ttl = DefaultKeyTTL
	}
	if now == nil {
		now = time.Now
	}
	c := &KeyCache{fetch: fetch, ttl: ttl, now: now}
	c.mu.keys = map[keyScope]cachedKey{}
	return c
}

// Key is the cache's KeyFunc.
func (c *KeyCache) Key(ctx context.Context, accessKey, date, region, service string) (client.SigningKey, error) {
	s := keyScope{accessKey, date, region, service}
	if key, ok := c.cached(s); ok {
		return key, nil
	}
	ch := c.group.DoChan(fmt.Sprintf("%q %q %q %q", accessKey, date, region, service), func() (any, error) {
		// Detached from the first caller: the others wait for it too.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keyFetchTimeout)
		defer cancel()
		key, err := c.fetch(fctx, accessKey, date, region, service)
		if err == nil {
			c.store(s, key)
		}
		return key, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return client.SigningKey{}, res.Err
		}
		return res.Val.(client.SigningKey), nil
	case <-ctx.Done():
		return client.SigningKey{}, ctx.Err()
	}
}

func (c *KeyCache) cached(s keyScope) (client.SigningKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.mu.keys[s]
	if !ok || !c.now().Before(k.expires) {
		return client.SigningKey{}, false
	}
	return k.key, true
}

func (c *KeyCache) store(s keyScope, key client.SigningKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.mu.keys) >= maxCachedKeys {
		for s, k := range c.mu.keys {
			if !now.Before(k.expires) {
				delete(c.mu.keys, s)
			}
		}
		if len(c.mu.keys) >= maxCachedKeys {
			clear(c.mu.keys)
		}
	}
	c.mu.keys[s] = cachedKey{key: key, expires: now.Add(c.ttl)}
}
