package s3gw

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/clipstore/clipstore/client"
	"github.com/clipstore/clipstore/internal/devcluster"
	"github.com/clipstore/clipstore/internal/sigv4"
	"github.com/clipstore/clipstore/meta"
	"github.com/clipstore/clipstore/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The test credential, and the domain of virtual-host-style requests.
const (
	testAccessKey = "CLIPSTORETESTKEY"
	testSecret    = "test/secret+key=="
	testDomain    = "s3.test"
)

// testGrants are the test credentials' grants, by access key: the main
// one may do anything; the others are for the authorization tests, with
// testSecret too.
var testGrants = map[string]client.Policy{
	testAccessKey:  {{Bucket: "*", Access: client.AccessAdmin}},
	"READERKEY":    {{Bucket: "authz", Access: client.AccessRead}},
	"WRITERKEY":    {{Bucket: "authz", Access: client.AccessWrite}},
	"ADMINKEY":     {{Bucket: "authz-new", Access: client.AccessAdmin}, {Bucket: "authz", Access: client.AccessRead}},
	"NOTHINGKEY":   nil,
	"COPYWRITEKEY": {{Bucket: "authz-new", Access: client.AccessWrite}},
}

// testKeys is the KeyFunc of the test credentials.
func testKeys(_ context.Context, accessKey, date, region, service string) (client.SigningKey, error) {
	grants, ok := testGrants[accessKey]
	if !ok {
		return client.SigningKey{}, fmt.Errorf("%w: %s", sigv4.ErrUnknownAccessKey, accessKey)
	}
	return client.SigningKey{Key: sigv4.DeriveKey(testSecret, date, region, service), Grants: grants}, nil
}

// testGateway is one meta member, six storage nodes, a client and a
// gateway on httptest, in this process. The gateway serves HTTPS (where
// the SDK sends aws-chunked bodies with trailing checksums) and plain
// HTTP (where it signs the payload and sends checksums as headers).
type testGateway struct {
	gw                        *Gateway
	client                    *client.Client
	srv, plain                *httptest.Server
	transport, plainTransport *http.Transport
	hook                      copyHook // wraps the source of the gateway's copies
}

// newTestGateway starts the cluster and the gateway; the test's cleanup
// stops them.
func newTestGateway(t *testing.T) *testGateway {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dc, err := devcluster.Start(ctx, devcluster.Config{Dir: t.TempDir(), MetaAddr: "127.0.0.1:0", MetaNodes: 1, StorageNodes: 6,
		Logger:           slog.New(slog.DiscardHandler),
		ConfigureMeta:    func(c *meta.Config) { c.NodeDownAfter = time.Minute },
		ConfigureStorage: func(c *server.Config) { c.HeartbeatInterval = 50 * time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := dc.Shutdown(ctx); err != nil {
			t.Errorf("shut down the cluster: %v", err)
		}
	})
	addr := dc.MetaAddrs()[0]
	c, err := client.New(context.Background(), client.Config{Meta: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	gw, err := New(Config{Client: c, Keys: testKeys, Domain: testDomain, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close) // after the servers below close
	tg := &testGateway{gw: gw, client: c}
	gw.copySourceHook = tg.hook.wrap // before the gateway serves
	tg.srv, tg.plain = httptest.NewTLSServer(gw), httptest.NewServer(gw)
	t.Cleanup(tg.srv.Close)
	t.Cleanup(tg.plain.Close)
	// The test certificate names example.com: that is the name checked,
	// whatever host a request is for.
	roots := x509.NewCertPool()
	roots.AddCert(tg.srv.Certificate())
	tg.transport = dialing(tg.srv.Listener.Addr().String())
	tg.transport.TLSClientConfig = &tls.Config{RootCAs: roots, ServerName: "example.com"}
	tg.plainTransport = dialing(tg.plain.Listener.Addr().String())
	t.Cleanup(tg.transport.CloseIdleConnections)
	t.Cleanup(tg.plainTransport.CloseIdleConnections)
	return tg
}

// dialing is a transport that dials addr whatever the host a request is
// for: virtual-host-style names need no DNS.
func dialing(addr string) *http.Transport {
	return &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// sdk returns an AWS SDK S3 client of the gateway over HTTPS: path
// style, or virtual-host style (<bucket>.s3.test). It does not retry.
func (tg *testGateway) sdk(pathStyle bool, opts ...func(*s3.Options)) *s3.Client {
	endpoint := tg.srv.URL
	if !pathStyle {
		endpoint = "https://" + testDomain
	}
	return newSDK(endpoint, pathStyle, tg.httpClient(), opts...)
}

// sdkPlain returns a path-style client over plain HTTP.
func (tg *testGateway) sdkPlain() *s3.Client {
	return newSDK(tg.plain.URL, true, &http.Client{Transport: tg.plainTransport})
}

func newSDK(endpoint string, pathStyle bool, hc *http.Client, opts ...func(*s3.Options)) *s3.Client {
	return newSDKAs(testAccessKey, endpoint, pathStyle, hc, opts...)
}

// newSDKAs is newSDK signing with another of the test access keys.
func newSDKAs(accessKey, endpoint string, pathStyle bool, hc *http.Client, opts ...func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:       DefaultRegion,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, testSecret, ""),
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: pathStyle,
		HTTPClient:   hc,
		Retryer:      aws.NopRetryer{},
	}, opts...)
}

// httpClient is an HTTPS client of the gateway.
func (tg *testGateway) httpClient() *http.Client {
	return &http.Client{Transport: tg.transport}
}
