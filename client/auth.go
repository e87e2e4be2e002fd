package client

import (
	"context"
	"fmt"
	"strings"

	"github.com/clipstore/clipstore/internal/callauth"
	"github.com/clipstore/clipstore/internal/capability"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// metaService prefixes the full names of MetaService's methods: the calls
// a client signs.
const metaService = "/clipstore.meta.v1.MetaService/"

// sign is the client's interceptor: with an access key, it signs every
// meta call, each attempt afresh (a retry carries a fresh date).
func (c Config) sign(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if c.AccessKey == "" || !strings.HasPrefix(method, metaService) {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	msg, ok := req.(proto.Message)
	if !ok {
		return fmt.Errorf("%w: %T is not a message", ErrInvalidArgument, req)
	}
	digest, err := callauth.Digest(msg)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, callauth.Header, callauth.Sign(c.AccessKey, c.SecretKey, c.Now(), method, digest))
	return invoker(ctx, method, req, reply, cc, opts...)
}

// OnBehalfOf returns a context whose meta calls act for access key id:
// meta takes it only from a certificate with the gateway (or meta) role,
// after the gateway has verified the user's signature itself. The S3
// gateway's calls for a request carry it.
func OnBehalfOf(ctx context.Context, id string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, callauth.PrincipalHeader, id)
}

// withCapability returns ctx whose storage calls carry token (none when
// it is empty: a cluster without capabilities).
func withCapability(ctx context.Context, token []byte) context.Context {
	if len(token) == 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, capability.Header, string(token))
}

// setToken keeps the capability of the latest answer for the view's reads.
func (v *clipView) setToken(token []byte) {
	if len(token) > 0 {
		v.token.Store(&token)
	}
}

// capability is the view's token for its storage reads.
func (v *clipView) capability() []byte {
	if t := v.token.Load(); t != nil {
		return *t
	}
	return nil
}
