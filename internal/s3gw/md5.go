package s3gw

import (
	"hash"
	"sync"

	md5simd "github.com/minio/md5-simd"
)

// md5ServerHashers is how many hashers one md5-simd server hands out
// before md5Servers replaces it.
const md5ServerHashers = 128

// md5Servers hands out multi-buffer MD5 hashers from a md5-simd server and
// replaces the server once it has handed out md5ServerHashers of them. A
// server never forgets a hasher it served (md5-simd v1.1.2 deletes a
// closed hasher from its client map under the wrong key) and walks every
// one it remembers on each 32 KiB round of hashing, so one server kept for
// a gateway's life slows down with every put: md5 puts of 8 MiB fell from
// 571 to 339 MiB/s over six 10 s runs, the server's loop 62% of the
// gateway's CPU by the last. A replaced server is closed when its last
// hasher is.
type md5Servers struct {
	mu  sync.Mutex
	cur *md5Server
	// made and closed count the servers made and closed, for tests.
	made, closed int
}

// md5Server is one md5-simd server and its hashers.
type md5Server struct {
	srv     md5simd.Server
	handed  int  // hashers handed out
	open    int  // of those, not closed yet
	retired bool // replaced: closed when open reaches 0
}

// NewHash returns a hasher, to be closed when done.
func (m *md5Servers) NewHash() hash.Hash {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil || m.cur.handed == md5ServerHashers {
		if m.cur != nil {
			m.retireLocked(m.cur)
		}
		m.cur = &md5Server{srv: md5simd.NewServer()}
		m.made++
	}
	s := m.cur
	s.handed++
	s.open++
	return &md5Hasher{Hasher: s.srv.NewHash(), m: m, s: s}
}

// Close closes the current server once its hashers are closed.
func (m *md5Servers) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur != nil {
		m.retireLocked(m.cur)
		m.cur = nil
	}
}

func (m *md5Servers) retireLocked(s *md5Server) {
	s.retired = true
	m.closeIfDoneLocked(s)
}

func (m *md5Servers) release(s *md5Server) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s.open--
	m.closeIfDoneLocked(s)
}

func (m *md5Servers) closeIfDoneLocked(s *md5Server) {
	if s.retired && s.open == 0 {
		s.srv.Close()
		m.closed++
	}
}

// md5Hasher is a md5-simd hasher that tells its server's keeper when it
// is closed.
type md5Hasher struct {
	md5simd.Hasher
	m    *md5Servers
	s    *md5Server
	once sync.Once
}

func (h *md5Hasher) Close() {
	h.once.Do(func() {
		h.Hasher.Close()
		h.m.release(h.s)
	})
}
