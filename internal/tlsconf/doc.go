// Package tlsconf is the TLS of every clipstore link: a process's identity
// (a certificate, its key and the CA bundle peers must chain to) loaded
// from PEM files by a Loader, the TLS 1.3 server and client configs made
// from it, the roles cluster certificates carry, and the making of a small
// cluster's CA and certificates for `clipstore admin certs`.
//
// Certificates are rotated by replacing the files: a Loader re-reads them
// when they change (checked at a handshake, at most once a second, as etcd
// does) and on Reload, and every config it made uses the new identity from
// the next handshake on. Connections already established keep theirs. A
// load that fails (a half-written file, a key of another certificate)
// keeps the identity in force, so a rotation in progress never leaves a
// process without one.
//
// The certificate in force must also serve configs made before it was
// loaded, which crypto/tls does not do by itself for the CA pool: a
// tls.Config's RootCAs and ClientCAs are fixed values, copied with the
// config (gRPC clones the config for every handshake). So a server config
// picks its certificate and client CA pool per handshake
// (GetConfigForClient), and a client config turns crypto/tls's own
// verification off (InsecureSkipVerify) and does the same verification
// itself in VerifyConnection, against the pool in force: the chain, the
// server-auth key usage and the server's name. VerifyConnection runs on
// resumed sessions too, so no session escapes it.
//
// The server's name is the one thing a client config cannot find out by
// itself when the server is dialled by IP address: gRPC sets the host of
// the dial address on its own copy of the config, and Go sends no IP
// address in SNI, the only name VerifyConnection sees. So gRPC clients use
// ClientCredentials, which makes a config per connection with its host.
//
// Cluster certificates carry roles (RoleMeta, RoleStorage, RoleGateway,
// RoleClient) as URI SANs, which servers check per call with
// PeerCertificate and HasRole.
package tlsconf
