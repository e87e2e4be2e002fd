package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestRoles(t *testing.T) {
	if got := RoleURI(RoleStorage).String(); got != "clipstore://role/storage" {
		t.Errorf("RoleURI(storage) = %s", got)
	}
	var uris []*url.URL
	for _, s := range []string{"clipstore://role/meta", "clipstore://role/bogus", "https://role/storage",
		"clipstore://other/gateway", "clipstore://role/gateway", "clipstore://role/meta"} {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		uris = append(uris, u)
	}
	cert := &x509.Certificate{URIs: uris}
	if got, want := Roles(cert), []string{RoleMeta, RoleGateway}; !slices.Equal(got, want) {
		t.Errorf("Roles = %v, want %v", got, want)
	}
	for _, c := range []struct {
		cert  *x509.Certificate
		roles []string
		want  bool
	}{
		{cert, []string{RoleMeta}, true},
		{cert, []string{RoleStorage, RoleGateway}, true},
		{cert, []string{RoleStorage}, false},
		{cert, []string{"bogus"}, false},
		{cert, nil, false},
		{nil, []string{RoleMeta}, false},
	} {
		if got := HasRole(c.cert, c.roles...); got != c.want {
			t.Errorf("HasRole(%v, %v) = %v, want %v", Roles(c.cert), c.roles, got, c.want)
		}
	}
}

// grpcServer serves the health service with creds on loopback and records
// the roles of each call's peer.
type grpcServer struct {
	addr  string
	roles chan []string
}

func startGRPC(t *testing.T, creds credentials.TransportCredentials) *grpcServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &grpcServer{addr: ln.Addr().String(), roles: make(chan []string, 10)}
	srv := grpc.NewServer(grpc.Creds(creds), grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			cert := PeerCertificate(ctx)
			if cert == nil {
				s.roles <- nil
			} else {
				s.roles <- append([]string{}, Roles(cert)...)
			}
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return s
}

// check makes one call to s over a new connection with creds.
func (s *grpcServer) check(t *testing.T, creds credentials.TransportCredentials) error {
	t.Helper()
	cc, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(false))
	return err
}

// TestGRPC: the configs under gRPC, which clones them per handshake, and
// PeerCertificate in a handler.
func TestGRPC(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "CA")
	srv, _ := newLoader(t, dir, "meta", ca.leaf(t, "m0", []string{RoleMeta}, "127.0.0.1"), ca)
	storage, _ := newLoader(t, dir, "storage", ca.leaf(t, "s0", []string{RoleStorage}, "127.0.0.1"), ca)
	app, _ := newLoader(t, dir, "client", ca.leaf(t, "app", []string{RoleClient}), ca)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.cert)
	anonymous := credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13})

	required := startGRPC(t, credentials.NewTLS(srv.ServerConfig(true)))
	for _, c := range []struct {
		name  string
		creds credentials.TransportCredentials
		want  []string
	}{
		{"storage node", storage.ClientCredentials(), []string{RoleStorage}},
		{"client", app.ClientCredentials(), []string{RoleClient}},
		{"client with the host", credentials.NewTLS(app.ClientConfig("127.0.0.1")), []string{RoleClient}},
	} {
		if err := required.check(t, c.creds); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := <-required.roles; !slices.Equal(got, c.want) {
			t.Errorf("%s: PeerCertificate's roles %v, want %v", c.name, got, c.want)
		}
	}
	if err := required.check(t, anonymous); err == nil {
		t.Error("a call without a client certificate was served by a server that requires one")
	}
	if err := required.check(t, credentials.NewTLS(app.ClientConfig(""))); err == nil || !strings.Contains(err.Error(), "no server name") {
		t.Errorf("ClientConfig(\"\") dialling an IP address: %v, want ErrNoServerName", err)
	}

	optional := startGRPC(t, credentials.NewTLS(srv.ServerConfig(false)))
	if err := optional.check(t, anonymous); err != nil {
		t.Fatalf("without a client certificate, not required: %v", err)
	}
	if got := <-optional.roles; got != nil {
		t.Errorf("PeerCertificate of a call without a client certificate has roles %v", got)
	}
}
