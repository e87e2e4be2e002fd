package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/clipstore/clipstore/client"
)

// ErrNotFound: the bucket or object does not exist.
var ErrNotFound = errors.New("not found")

// Store is what a run loads: the few object operations the workloads use.
// NewClientStore is a cluster through the client library, NewS3Store any
// S3 endpoint. Implementations are safe for concurrent use, stream object
// bytes (from Put's reader, into Get's writer) without holding whole
// objects, and return errors matching ErrNotFound for a missing object
// where they can tell.
type Store interface {
	// CreateBucket creates the bucket unless it exists already.
	CreateBucket(ctx context.Context, bucket string) error
	// Put stores the size bytes r yields under key. It fails if the
	// store records another size.
	Put(ctx context.Context, bucket, key string, r io.Reader, size int64) error
	// Get writes the object under key to w and returns its size as the
	// store records it.
	Get(ctx context.Context, bucket, key string, w io.Writer) (size int64, err error)
	// ReadAt reads len(p) bytes at off of the object under key into p and
	// returns how many it read and the object's size. As with
	// io.ReaderAt, n < len(p) comes with an error; io.EOF if the object
	// ended first.
	ReadAt(ctx context.Context, bucket, key string, p []byte, off int64) (n int, size int64, err error)
	// Stat returns the size of the object under key.
	Stat(ctx context.Context, bucket, key string) (size int64, err error)
	// Delete deletes the object under key. Deleting a missing object
	// fails with ErrNotFound if the store can tell (S3 cannot).
	Delete(ctx context.Context, bucket, key string) error
	// List yields the objects whose keys start with prefix, in key order;
	// an error ends it.
	List(ctx context.Context, bucket, prefix string) iter.Seq2[Entry, error]
}

// Entry is an object of a listing.
type Entry struct {
	Key  string
	Size int64
}

// clientStore is a cluster through the client library.
type clientStore struct {
	cl *client.Client
}

// NewClientStore returns the store of the cluster cl talks to.
func NewClientStore(cl *client.Client) Store {
	return &clientStore{cl: cl}
}

func (s *clientStore) CreateBucket(ctx context.Context, bucket string) error {
	if err := s.cl.CreateBucket(ctx, bucket, nil); err != nil && !errors.Is(err, client.ErrExists) {
		return err
	}
	return nil
}

func (s *clientStore) Put(ctx context.Context, bucket, key string, r io.Reader, size int64) error {
	info, err := s.cl.Put(ctx, bucket, key, r, &client.PutOptions{SizeHint: size})
	switch {
	case err != nil:
		return err
	case info.Size != size:
		return fmt.Errorf("put %s: the record says %d bytes, %d were sent", key, info.Size, size)
	}
	return nil
}

func (s *clientStore) Get(ctx context.Context, bucket, key string, w io.Writer) (int64, error) {
	info, err := s.cl.Get(ctx, bucket, key, w, nil)
	if err != nil {
		return 0, notFound(err)
	}
	return info.Size, nil
}

func (s *clientStore) ReadAt(ctx context.Context, bucket, key string, p []byte, off int64) (int, int64, error) {
	r, err := s.cl.Open(ctx, bucket, key)
	if err != nil {
		return 0, 0, notFound(err)
	}
	defer r.Close()
	n, err := r.ReadAt(p, off)
	return n, r.Size(), err
}

func (s *clientStore) Stat(ctx context.Context, bucket, key string) (int64, error) {
	info, err := s.cl.Stat(ctx, bucket, key)
	if err != nil {
		return 0, notFound(err)
	}
	return info.Size, nil
}

func (s *clientStore) Delete(ctx context.Context, bucket, key string) error {
	return notFound(s.cl.Delete(ctx, bucket, key))
}

func (s *clientStore) List(ctx context.Context, bucket, prefix string) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		for e, err := range s.cl.List(ctx, bucket, prefix) {
			if err != nil {
				yield(Entry{}, err)
				return
			}
			if !yield(Entry{Key: e.Key, Size: e.Size}, nil) {
				return
			}
		}
	}
}

// notFound makes a client.ErrNotFound match ErrNotFound too.
func notFound(err error) error {
	if errors.Is(err, client.ErrNotFound) {
		return notFoundError{err}
	}
	return err
}

// notFoundError is a store's error for a missing object or bucket: its
// message, and a match for ErrNotFound.
type notFoundError struct{ err error }

func (e notFoundError) Error() string        { return e.err.Error() }
func (e notFoundError) Unwrap() error        { return e.err }
func (e notFoundError) Is(target error) bool { return target == ErrNotFound }
