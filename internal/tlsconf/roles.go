package tlsconf

import (
	"context"
	"crypto/x509"
	"net/url"
	"slices"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Roles of cluster certificates, carried as URI SANs
// "clipstore://role/<role>". Members' certificates (meta, storage,
// gateway) serve and call; client certificates only call.
const (
	RoleMeta    = "meta"
	RoleStorage = "storage"
	RoleGateway = "gateway"
	RoleClient  = "client"
)

// roleScheme and roleHost make a role's URI.
const (
	roleScheme = "clipstore"
	roleHost   = "role"
)

// knownRole reports whether role is one of the Role constants.
func knownRole(role string) bool {
	switch role {
	case RoleMeta, RoleStorage, RoleGateway, RoleClient:
		return true
	}
	return false
}

// RoleURI is the URI SAN that carries role.
func RoleURI(role string) *url.URL {
	return &url.URL{Scheme: roleScheme, Host: roleHost, Path: "/" + role}
}

// Roles are the roles cert carries, in its order; URIs of unknown roles,
// and other URIs, are ignored.
func Roles(cert *x509.Certificate) []string {
	if cert == nil {
		return nil
	}
	var roles []string
	for _, u := range cert.URIs {
		if u.Scheme != roleScheme || u.Host != roleHost {
			continue
		}
		if r := strings.TrimPrefix(u.Path, "/"); knownRole(r) && !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	return roles
}

// HasRole reports whether cert carries any of roles. A nil cert has none.
func HasRole(cert *x509.Certificate, roles ...string) bool {
	for _, r := range Roles(cert) {
		if slices.Contains(roles, r) {
			return true
		}
	}
	return false
}

// PeerCertificate returns the verified leaf certificate of a gRPC call's
// peer, nil if the call did not come over TLS with a client certificate
// (a server config that does not require one lets a caller go without).
func PeerCertificate(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}
