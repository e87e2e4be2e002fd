package erasure

import (
	"errors"
	"fmt"
	"io"
)

// sliceSource serves units the caller already holds.
type sliceSource struct{ units [][]byte }

func (s *sliceSource) unit(_ int64, i int) []byte { return s.units[i] }

// streamSource reads units from sequential shard streams, each only when a
// block first needs it. A stream that fails is dropped for good.
type streamSource struct {
	l      Layout
	rep    *Report
	shards []streamShard
}

type streamShard struct {
	r   io.Reader // nil when missing or failed
	pos int64     // bytes of the stream consumed
	buf []byte
}

func newStreamSource(l Layout, rep *Report, readers []io.Reader) *streamSource {
	s := &streamSource{l: l, rep: rep, shards: make([]streamShard, len(readers))}
	for i, r := range readers {
		s.shards[i].r = r
	}
	return s
}

func (s *streamSource) unit(b int64, i int) []byte {
	sh := &s.shards[i]
	if sh.r == nil {
		return nil
	}
	n := s.l.UnitLen(b)
	if sh.buf == nil {
		sh.buf = make([]byte, s.l.UnitLen(0))
	}
	err := sh.skipTo(s.l.UnitOffset(b))
	if err == nil {
		var got int
		got, err = io.ReadFull(sh.r, sh.buf[:n])
		sh.pos += int64(got)
	}
	if err != nil {
		sh.r = nil
		s.rep.fault(i, b, readErr(err))
		return nil
	}
	return sh.buf[:n]
}

// skipTo advances the stream to off, seeking when it can.
func (sh *streamShard) skipTo(off int64) error {
	gap := off - sh.pos
	if gap == 0 {
		return nil
	}
	if gap < 0 {
		return fmt.Errorf("erasure: shard stream at %d cannot go back to %d", sh.pos, off)
	}
	if sk, ok := sh.r.(io.Seeker); ok {
		if _, err := sk.Seek(gap, io.SeekCurrent); err == nil {
			sh.pos = off
			return nil
		}
	}
	got, err := io.CopyN(io.Discard, sh.r, gap)
	sh.pos += got
	return err
}

// readerAtSource reads units at their offsets. A shard that fails is
// dropped for good.
type readerAtSource struct {
	l      Layout
	rep    *Report
	shards []io.ReaderAt // nil when missing or failed
	bufs   [][]byte
}

func newReaderAtSource(l Layout, rep *Report, shards []io.ReaderAt) *readerAtSource {
	return &readerAtSource{l: l, rep: rep, shards: append([]io.ReaderAt(nil), shards...), bufs: make([][]byte, len(shards))}
}

func (s *readerAtSource) unit(b int64, i int) []byte {
	r := s.shards[i]
	if r == nil {
		return nil
	}
	n := s.l.UnitLen(b)
	if s.bufs[i] == nil {
		s.bufs[i] = make([]byte, s.l.UnitLen(0))
	}
	buf := s.bufs[i][:n]
	got, err := r.ReadAt(buf, s.l.UnitOffset(b))
	if got == n {
		return buf
	}
	s.shards[i] = nil
	s.rep.fault(i, b, readErr(err))
	return nil
}

// readErr names a shard read failure; short data is io.ErrUnexpectedEOF.
func readErr(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read shard: %w", err)
}
