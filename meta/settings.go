package meta

import (
	"context"
	"fmt"

	pb "github.com/clipstore/clipstore/proto/metapb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// ETag modes of the S3 gateway (Settings.etag_mode).
const (
	ETagModeMD5  = "md5"  // S3's: the MD5 of the bytes, of the parts' MD5s for multipart
	ETagModeFast = "fast" // the clip id, "<hex>-1": unique per write, no hashing
)

// keyClusterSettings holds the cluster's Settings in bktSettings.
var keyClusterSettings = []byte("cluster_settings")

// validateSettings checks the fields a Settings sets; "" leaves one to the
// level above (the cluster's for a bucket, the default for the cluster).
func validateSettings(s *pb.Settings) error {
	switch s.GetEtagMode() {
	case "", ETagModeMD5, ETagModeFast:
		return nil
	}
	return fmt.Errorf("%w: ETag mode %q: want %q or %q", ErrInvalidArgument, s.GetEtagMode(), ETagModeMD5, ETagModeFast)
}

// effectiveSettings merges a bucket's settings over the cluster's over
// the defaults.
func effectiveSettings(cluster, bucket *pb.Settings) *pb.Settings {
	out := &pb.Settings{EtagMode: ETagModeMD5}
	for _, s := range []*pb.Settings{cluster, bucket} {
		if s.GetEtagMode() != "" {
			out.EtagMode = s.GetEtagMode()
		}
	}
	return out
}

func clusterSettings(tx *bolt.Tx) (*pb.Settings, error) {
	s := &pb.Settings{}
	if _, err := getMsg(tx.Bucket(bktSettings), keyClusterSettings, s); err != nil {
		return nil, err
	}
	return s, nil
}

// readSettings answers a SettingsRequest that changes nothing.
func (n *Node) readSettings(_ context.Context, req *pb.SettingsRequest) (*pb.SettingsResponse, error) {
	resp := &pb.SettingsResponse{}
	err := n.fsm.view(func(tx *bolt.Tx) error {
		var err error
		if resp.Cluster, err = clusterSettings(tx); err != nil {
			return err
		}
		if req.Bucket != "" {
			b := &pb.Bucket{}
			found, err := getMsg(tx.Bucket(bktBuckets), []byte(req.Bucket), b)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("%w: bucket %q", ErrNotFound, req.Bucket)
			}
			resp.Bucket = b.Settings
			if resp.Bucket == nil {
				resp.Bucket = &pb.Settings{}
			}
		}
		resp.Effective = effectiveSettings(resp.Cluster, resp.Bucket)
		return nil
	})
	return resp, err
}

// validateSettingsRequest checks a SettingsRequest before it goes to Raft.
func validateSettingsRequest(req *pb.SettingsRequest) error {
	if req.Bucket != "" {
		if err := ValidateBucketName(req.Bucket); err != nil {
			return err
		}
	}
	if req.EtagMode != nil {
		return validateSettings(&pb.Settings{EtagMode: *req.EtagMode})
	}
	return nil
}

// setSettings changes the fields the command sets, of the cluster's
// settings or of one bucket's, and answers what is now in force.
func (a *applier) setSettings(c *pb.SettingsRequest) (proto.Message, error) {
	if err := validateSettingsRequest(c); err != nil {
		return nil, err
	}
	merge := func(s *pb.Settings) *pb.Settings {
		if s == nil {
			s = &pb.Settings{}
		}
		if c.EtagMode != nil {
			s.EtagMode = *c.EtagMode
		}
		return s
	}
	cluster, err := clusterSettings(a.tx)
	if err != nil {
		return nil, err
	}
	if c.Bucket == "" {
		cluster = merge(cluster)
		resp := &pb.SettingsResponse{Cluster: cluster, Effective: effectiveSettings(cluster, nil)}
		return resp, putMsg(a.tx.Bucket(bktSettings), keyClusterSettings, cluster)
	}
	bk := a.tx.Bucket(bktBuckets)
	b := &pb.Bucket{}
	found, err := getMsg(bk, []byte(c.Bucket), b)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: bucket %q", ErrNotFound, c.Bucket)
	}
	b.Settings = merge(b.Settings)
	resp := &pb.SettingsResponse{Cluster: cluster, Bucket: b.Settings, Effective: effectiveSettings(cluster, b.Settings)}
	return resp, putMsg(bk, []byte(c.Bucket), b)
}

// Settings reads the cluster's or a bucket's settings (linearizably unless
// stale reads are asked for), or changes them through Raft.
func (s *service) Settings(ctx context.Context, req *pb.SettingsRequest) (*pb.SettingsResponse, error) {
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if err := validateSettingsRequest(req); err != nil {
		return nil, toStatus(err)
	}
	if req.EtagMode == nil {
		return read(ctx, s.n, req, req.Read, s.n.readSettings, pb.MetaServiceClient.Settings)
	}
	return onLeader(ctx, s.n, req, func(ctx context.Context, req *pb.SettingsRequest) (*pb.SettingsResponse, error) {
		resp, err := s.n.propose(ctx, &pb.Command{RequestId: req.RequestId, Op: &pb.Command_SetSettings{SetSettings: req}})
		if err != nil {
			return nil, err
		}
		out := resp.(*pb.SettingsResponse)
		s.n.log.Info("settings changed", "bucket", req.Bucket, "etag_mode", req.GetEtagMode())
		return out, nil
	}, pb.MetaServiceClient.Settings)
}
