package meta

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/clipstore/clipstore/internal/tlsconf"
	pb "github.com/clipstore/clipstore/proto/metapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestRoleMatrix: every RPC of the meta service, called with a certificate
// of each role (and with none), is admitted or refused by checkRole as the
// design says: the storage nodes' calls only from meta and storage
// certificates, JoinMember only from meta ones, SigningKey only from
// gateway ones, everything else from any certificate of the CA.
func TestRoleMatrix(t *testing.T) {
	caCert, caKey, err := tlsconf.NewCA("test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	certOf := func(roles ...string) *x509.Certificate {
		if roles == nil {
			return nil
		}
		certPEM, _, err := tlsconf.NewLeaf(caCert, caKey, tlsconf.LeafOptions{CommonName: "x", Roles: roles})
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(certPEM)
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	roles := map[string]*x509.Certificate{
		"meta": certOf(tlsconf.RoleMeta), "storage": certOf(tlsconf.RoleStorage), "gateway": certOf(tlsconf.RoleGateway),
		"client": certOf(tlsconf.RoleClient), "none": nil,
	}
	// The design's table, written out apart from the code's.
	allowed := func(method, role string) bool {
		switch method {
		case "RegisterNode", "Heartbeat", "UpdateShard", "ListNodeShards", "CheckShards":
			return role == "meta" || role == "storage"
		case "JoinMember":
			return role == "meta"
		case "SigningKey":
			return role == "gateway"
		}
		return true
	}
	service := pb.File_meta_proto.Services().ByName("MetaService")
	methods := service.Methods()
	if methods.Len() < 30 {
		t.Fatalf("%d methods: the service descriptor is not the one expected", methods.Len())
	}
	for i := range methods.Len() {
		method := string(methods.Get(i).Name())
		for role, cert := range roles {
			ctx := context.Background()
			if cert != nil {
				ctx = peer.NewContext(ctx, &peer.Peer{AuthInfo: credentials.TLSInfo{
					State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}}})
			}
			err := checkRole(tlsconf.PeerCertificate(ctx), method)
			if want := allowed(method, role); want != (err == nil) {
				t.Errorf("%s with a %s certificate: %v; want allowed %v", method, role, err, want)
			}
			if err != nil && status.Code(toStatus(err)) != codes.PermissionDenied {
				t.Errorf("%s with a %s certificate: %v, want PermissionDenied", method, role, err)
			}
		}
	}
	// The role sets name real methods.
	for _, set := range []map[string]bool{clusterCalls, memberCalls, gatewayCalls} {
		for m := range set {
			if methods.ByName(protoreflect.Name(m)) == nil {
				t.Errorf("%s is not a method of the service", m)
			}
		}
	}
}
