package loadgen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
)

// DefaultRegion is the region S3 requests are signed for without
// S3Config.Region.
const DefaultRegion = "us-east-1"

// copyBufferSize is the size of the buffer an S3 get copies the response
// body through into its writer.
const copyBufferSize = 256 << 10

// S3Config is the S3 endpoint an S3Store loads.
type S3Config struct {
	// Endpoint is the endpoint's URL, e.g. http://127.0.0.1:9000; without
	// a scheme, http. Requests address buckets path style.
	Endpoint string
	// AccessKey and SecretKey are the credential requests are signed
	// with.
	AccessKey, SecretKey string
	// Region is the region requests are signed for (default us-east-1).
	Region string
	// Concurrency sizes the connection pool: as many idle connections
	// are kept as operations run at once (default DefaultConcurrency).
	Concurrency int
}

// S3Store is an S3 endpoint, through the AWS SDK for Go v2, tuned to
// measure the endpoint rather than the SDK: payloads are not hashed
// (UNSIGNED-PAYLOAD) and no checksums are computed or validated, since
// the workloads verify every byte they read; bodies stream with their
// length known (never aws-chunked); the SDK does not retry, so that every
// failure counts. Close it when done.
type S3Store struct {
	client    *s3.Client
	transport *http.Transport
	region    string
	bufs      sync.Pool // *[]byte of copyBufferSize
}

// NewS3Store returns the store of the endpoint cfg names. It does not
// connect yet.
func NewS3Store(cfg S3Config) (*S3Store, error) {
	endpoint := cfg.Endpoint
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	u, err := url.Parse(endpoint)
	switch {
	case cfg.Endpoint == "":
		return nil, errors.New("s3 store: Endpoint: none given")
	case err != nil:
		return nil, fmt.Errorf("s3 store: Endpoint: %w", err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return nil, fmt.Errorf("s3 store: Endpoint %q: want http://HOST:PORT or https://HOST:PORT", cfg.Endpoint)
	case cfg.AccessKey == "" || cfg.SecretKey == "":
		return nil, errors.New("s3 store: AccessKey and SecretKey: both are needed")
	case cfg.Concurrency < 0:
		return nil, fmt.Errorf("s3 store: Concurrency: %d is negative", cfg.Concurrency)
	}
	region := cmp.Or(cfg.Region, DefaultRegion)
	conns := cmp.Or(cfg.Concurrency, DefaultConcurrency)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		// Bodies of megabytes: fewer, larger socket writes and reads.
		WriteBufferSize: 64 << 10,
		ReadBufferSize:  64 << 10,
	}
	s := &S3Store{transport: tr, region: region}
	s.bufs.New = func() any {
		b := make([]byte, copyBufferSize)
		return &b
	}
	s.client = s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(u.String()),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
		HTTPClient:   &http.Client{Transport: tr},
		Retryer:      aws.NopRetryer{},
		// No CRC of the body (it would need a second pass over it, or
		// aws-chunked with a trailer), and no validation of the
		// response's: the verifier checks every byte.
		RequestChecksumCalculation:                aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation:                aws.ResponseChecksumValidationWhenRequired,
		DisableLogOutputChecksumValidationSkipped: true,
		// No Expect: 100-continue round trip before each put's body.
		ContinueHeaderThresholdBytes: -1,
		APIOptions:                   []func(*middleware.Stack) error{v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware},
	})
	return s, nil
}

// Close closes the idle connections to the endpoint.
func (s *S3Store) Close() {
	s.transport.CloseIdleConnections()
}

func (s *S3Store) CreateBucket(ctx context.Context, bucket string) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(bucket)}
	if s.region != DefaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(s.region)}
	}
	_, err := s.client.CreateBucket(ctx, in)
	if owned := (*types.BucketAlreadyOwnedByYou)(nil); errors.As(err, &owned) {
		return nil
	}
	return err
}

func (s *S3Store) Put(ctx context.Context, bucket, key string, r io.Reader, size int64) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: r, ContentLength: aws.Int64(size)})
	return s3Error(err)
}

func (s *S3Store) Get(ctx context.Context, bucket, key string, w io.Writer) (int64, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return 0, s3Error(err)
	}
	defer out.Body.Close()
	buf := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(buf)
	if _, err := io.CopyBuffer(w, out.Body, *buf); err != nil {
		return 0, err
	}
	return aws.ToInt64(out.ContentLength), nil
}

// ReadAt is a GetObject of the range [off, off+len(p)).
func (s *S3Store) ReadAt(ctx context.Context, bucket, key string, p []byte, off int64) (int, int64, error) {
	if len(p) == 0 {
		size, err := s.Stat(ctx, bucket, key)
		return 0, size, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1))})
	if err != nil {
		return 0, 0, s3Error(err)
	}
	defer out.Body.Close()
	start, size, err := parseContentRange(aws.ToString(out.ContentRange))
	if err != nil {
		return 0, 0, err
	}
	if start != off {
		return 0, size, fmt.Errorf("asked for bytes from %d, got bytes from %d (Content-Range %q)", off, start, aws.ToString(out.ContentRange))
	}
	n, err := io.ReadFull(out.Body, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, size, err
}

// parseContentRange reads the first byte and the object size of a
// Content-Range "bytes FIRST-LAST/SIZE".
func parseContentRange(v string) (first, size int64, err error) {
	spec, ok := strings.CutPrefix(v, "bytes ")
	rng, total, ok2 := strings.Cut(spec, "/")
	from, _, ok3 := strings.Cut(rng, "-")
	if ok && ok2 && ok3 {
		first, err = strconv.ParseInt(from, 10, 64)
		if err == nil {
			size, err = strconv.ParseInt(total, 10, 64)
		}
		if err == nil {
			return first, size, nil
		}
	}
	return 0, 0, fmt.Errorf("range read: Content-Range %q: want bytes FIRST-LAST/SIZE", v)
}

func (s *S3Store) Stat(ctx context.Context, bucket, key string) (int64, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return 0, s3Error(err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

func (s *S3Store) Delete(ctx context.Context, bucket, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	return s3Error(err)
}

func (s *S3Store) List(ctx context.Context, bucket, prefix string) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(Entry{}, s3Error(err))
				return
			}
			for _, o := range page.Contents {
				if !yield(Entry{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)}, nil) {
					return
				}
			}
		}
	}
}

// s3Error makes an error of a 404 reply match ErrNotFound.
func s3Error(err error) error {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return notFoundError{err}
	}
	return err
}
