package meta

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// dialOptions are the options of a member's connections to other members
// (forwarding to the leader, Join): the configured ones, or plain text when
// they set no credentials.
func dialOptions(opts []grpc.DialOption) []grpc.DialOption {
	if len(opts) == 0 {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return opts
}
