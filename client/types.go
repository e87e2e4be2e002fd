package client

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"time"

	metapb "github.com/clipstore/clipstore/proto/metapb"
)

// Profile is an erasure-coding profile: RS(DataShards, ParityShards) over
// blocks of BlockSize bytes.
type Profile struct {
	DataShards, ParityShards, BlockSize int
}

func (p Profile) String() string {
	return fmt.Sprintf("%d+%d/%d", p.DataShards, p.ParityShards, p.BlockSize)
}

// BucketInfo describes a bucket.
type BucketInfo struct {
	Name     string
	Profile  Profile // the default profile of its clips
	Created  time.Time
	Settings Settings // its own settings (empty fields: the cluster's)
}

// Capture holds typed capture attributes stored with a clip.
type Capture struct {
	VehicleID  string
	Camera     string
	Start, End time.Time // zero: unknown
	Tags       []string
}

// ShardState is the state meta records for one shard of a clip.
type ShardState int

// Shard states.
const (
	ShardUnknown ShardState = iota
	ShardOK
	ShardMissing // never written, or its node or disk lost it
	ShardCorrupt // failed verification
)

func (s ShardState) String() string {
	switch s {
	case ShardOK:
		return "ok"
	case ShardMissing:
		return "missing"
	case ShardCorrupt:
		return "corrupt"
	}
	return "unknown"
}

// ShardInfo describes one shard of a clip.
type ShardInfo struct {
	Index  int
	Node   string // storage node id; empty when no node holds it
	ID     string // shard id, hex
	Length int64  // piece bytes
	State  ShardState
}

// ClipInfo describes a committed clip.
type ClipInfo struct {
	Bucket, Key string
	ClipID      string // 128-bit clip id, hex
	Generation  uint64 // changes with every overwrite
	Size        int64
	CRC32C      uint32 // of the clip's content
	ContentType string
	Metadata    map[string]string
	Capture     *Capture
	Created     time.Time
	Profile     Profile
	Shards      []ShardInfo
	// ETag and Checksums are what the writer stored with the clip
	// (PutOptions.Finish); empty if it stored none.
	ETag      string
	Checksums map[string]string
	// Parts are the clip's parts in order: one for a clip written by Put,
	// those chosen by CompleteUpload for a multipart upload's. Profile and
	// Shards above are the first part's. Reader.Info and StatPart hold
	// some of them only (Profile and Shards unset when not the first):
	// PartCount is how many the clip has.
	Parts     []PartInfo
	PartCount int
}

// PartInfo is one part of a clip, or of a multipart upload in progress.
type PartInfo struct {
	// Number is the part's number in its multipart upload (1..10000); 0
	// for the one part of a clip written by Put.
	Number int
	Offset int64 // within the clip; 0 for an upload's part
	Size   int64
	// ETag and Checksums are what the writer stored with the part
	// (PartOptions.Finish).
	ETag      string
	Checksums map[string]string
	Created   time.Time // when an upload's part was recorded
}

// UploadInfo is a multipart upload in progress.
type UploadInfo struct {
	Bucket, Key string
	UploadID    string // hex
	ClipID      string // the clip it becomes, hex
	Created     time.Time
	Expires     time.Time // aborted by meta after this
	ContentType string
	Metadata    map[string]string
	// ChecksumAlgorithm is what CreateUpload recorded
	// (PutOptions.ChecksumAlgorithm).
	ChecksumAlgorithm string
}

// PartOptions are the optional parts of a PutPart.
type PartOptions struct {
	// SizeHint is the expected part size, if known; placement uses it.
	SizeHint int64
	// Progress, if set, is called with the part bytes read so far.
	Progress func(written int64)
	// Finish is PutOptions.Finish for a part: its ETag and checksums are
	// stored with the part; an error aborts it.
	Finish func() (*PutFinish, error)
}

// CompletedPart names a part to make part of the clip, with the ETag its
// upload returned (checked by meta; "" skips the check).
type CompletedPart struct {
	Number int
	ETag   string
}

// CompleteOptions are the optional parts of a CompleteUpload.
type CompleteOptions struct {
	// ETag and Checksums are stored with the clip (S3: the MD5 of the
	// parts' MD5s, with "-N").
	ETag      string
	Checksums map[string]string
	// IfGenerationMatch is PutOptions.IfGenerationMatch.
	IfGenerationMatch *uint64
}

// ClipEntry is one clip of a listing.
type ClipEntry struct {
	Key        string
	ClipID     string
	Generation uint64
	Size       int64
	Created    time.Time
	ETag       string
	Capture    *Capture // nil: none
}

func clipEntryFromProto(e *metapb.ClipEntry) *ClipEntry {
	return &ClipEntry{Key: e.Key, ClipID: hex.EncodeToString(e.ClipId), Generation: e.Generation, ETag: e.Etag,
		Size: int64(e.Size), Created: unixNano(e.CreatedUnixNano), Capture: captureFromProto(e.Capture)}
}

// Member is a meta member.
type Member struct {
	ID, RaftAddress, GRPCAddress string
	Voter, Leader                bool
}

// StorageNode is a storage node as meta knows it.
type StorageNode struct {
	ID, Address, Zone string
	Up                bool
	DownSince         time.Time // zero while up
	DownReason        string    // why it was marked down, while down
	// AdminState is what an admin made of it: AdminActive, AdminDraining,
	// AdminMaintenance (until MaintenanceUntil) or AdminDecommissioned.
	// DrainDead: it drains by repair (decommissioned as dead).
	AdminState       string
	MaintenanceUntil time.Time
	DrainDead        bool
	ShardsToMove     uint64 // while draining: shard entries still on it
	BytesToMove      uint64 // while draining: their shard bytes
	DrainBlocked     string // while draining: why no move off it can be planned, if so
	Capacity, Free   uint64 // bytes, from the last heartbeat
	Shards           uint64
	LastHeartbeat    time.Time // zero if the leader has not heard from it
	// Scrub is the node's scrubbing as its last heartbeat to the leader
	// reported it; nil if the leader has not heard it report one.
	Scrub *ScrubStatus
	// Lost counts the shards the node found lost since it started (files
	// gone behind its back), as its last heartbeat reported; Corrupt those
	// it found corrupt (a failed checksum, a file whose size changed).
	Lost, Corrupt ShardLosses
	// FailedDisks names the node's disks it stopped using, with why.
	FailedDisks []FailedDisk
}

// ShardLosses counts shards found lost (their files gone behind their
// node's back, not deleted by it), or found corrupt, by the check that
// found them. Each is reported to meta and repaired.
type ShardLosses struct {
	Scrub, Inventory, Read uint64
}

// Total is the sum over the checks.
func (l ShardLosses) Total() uint64 { return l.Scrub + l.Inventory + l.Read }

// FailedDisk is a disk a storage node stopped using: its shard directories
// could not be read or made again.
type FailedDisk struct {
	Path, Reason string
}

// ScrubStatus is a storage node's scrubbing since the node started. Bytes
// count what a pass reads of the shard files.
type ScrubStatus struct {
	Running         bool   // a pass is in progress
	PassesCompleted uint64 // passes run to the end
	// The pass in progress, or the last one when idle.
	BytesDone, BytesTotal   uint64
	ShardsDone, ShardsTotal uint64
	LastPassEnd             time.Time // zero before the first complete pass
	LastPassCorrupt         uint64    // corrupt shards the last complete pass found
	LastPassLost            uint64    // shards whose file the last complete pass found gone
	// CorruptFound counts the corrupt shards found by every pass (a shard
	// still there at the next pass counts again).
	CorruptFound uint64
	// Interval is the pause between background passes; 0: the node does
	// not scrub in the background.
	Interval time.Duration
}

// RepairStatus is the repair queue and how fast it drains.
type RepairStatus struct {
	// QueueShards are the shard entries to rebuild (missing, corrupt, or on
	// a node down for longer than the repair grace), in flight included;
	// QueueBytes their piece bytes.
	QueueShards, QueueBytes uint64
	// Paused: the repair concurrency is 0, nothing new is planned.
	Paused bool
	// The rest is the leader's memory since Since, when it was elected.
	Since                         time.Time
	RepairedShards, RepairedBytes uint64
	BytesPerSec                   float64 // over the last minute
	// ETA is QueueBytes at BytesPerSec; unknown (ETAKnown false) when
	// shards are queued and nothing was repaired in the last minute.
	ETA      time.Duration
	ETAKnown bool
}

// MoveStatus is the progress of moves (drains and rebalancing), counted as
// RepairStatus counts repairs.
type MoveStatus struct {
	// QueueBytes are the shard bytes still to move: on draining nodes, and
	// in the running rebalance's plan.
	QueueBytes uint64
	Paused     bool // the move concurrency is 0
	// The leader's memory since its election (RepairStatus.Since).
	MovedShards, MovedBytes uint64
	BytesPerSec             float64 // over the last minute
	ETA                     time.Duration
	ETAKnown                bool
}

// ScrubSummary adds up the storage nodes' scrubbing.
type ScrubSummary struct {
	Running               int    // nodes with a pass in progress
	BytesDone, BytesTotal uint64 // over the passes in progress
	CorruptFound          uint64 // corrupt shards found, all nodes and passes
}

// ClusterStatus summarises the cluster.
type ClusterStatus struct {
	Leader        string // leader member id
	Term          uint64
	CommitIndex   uint64
	AppliedIndex  uint64
	Members       []Member
	Nodes         []StorageNode
	Buckets       uint64
	Clips         uint64
	DegradedClips uint64 // clips with a missing or corrupt shard
	// UnrecoverableClips counts the clips that lost more shards of a part
	// than it has parity: repair cannot rebuild them (data loss unless the
	// lost shards' nodes return). UnrecoverableKeys names the first of them
	// ("bucket/key", at most 100).
	UnrecoverableClips uint64
	UnrecoverableKeys  []string
	// Lost counts the shards the storage nodes found lost, summed; Corrupt
	// those they found corrupt.
	Lost, Corrupt  ShardLosses
	NodesUp        uint64
	PendingDeletes uint64
	// Datasets counts the datasets; DatasetOnlyClips and DatasetOnlyBytes
	// the generations only datasets keep (overwritten or deleted since).
	Datasets, DatasetOnlyClips, DatasetOnlyBytes uint64
	// RepairsInFlight counts the lost shards the leader is having rebuilt.
	RepairsInFlight uint64
	// RepairLimits are the cluster-wide repair limits in force; MoveLimits
	// those of moves (drains).
	RepairLimits, MoveLimits RepairLimits
	// ClipsByLostShards[i] counts the clips with i+1 missing or corrupt
	// shards.
	ClipsByLostShards []uint64
	// Repair is the repair queue and progress; Scrub the nodes' scrubbing
	// (each node's is in Nodes).
	Repair RepairStatus
	// Moves is the progress of drains and rebalancing.
	Moves MoveStatus
	Scrub ScrubSummary
	// RepairHold is set while the mass-down guard holds repair back.
	RepairHold *RepairHold
	// Rebalance is the rebalance's state and the leader's latest plan; nil
	// if the leader did not answer for it.
	Rebalance *RebalanceStatus
}

// RepairHold is the mass-down guard at work: more storage nodes went
// silent at once than it allows (Threshold: max(m+1, 30% of the active
// nodes)). They are marked down, but their shards are not rebuilt before
// Until, unless they return first: a network partition or a rack's power
// loss is not met with a storm of repair traffic. A leader change keeps it.
type RepairHold struct {
	Since, Until     time.Time
	Nodes, Threshold int
}

func profileFromProto(p *metapb.ECProfile) Profile {
	return Profile{DataShards: int(p.GetDataShards()), ParityShards: int(p.GetParityShards()), BlockSize: int(p.GetBlockSize())}
}

func profileToProto(p *Profile) (*metapb.ECProfile, error) {
	if p == nil {
		return nil, nil
	}
	if p.DataShards < 1 || p.ParityShards < 0 || p.BlockSize < 1 || p.DataShards+p.ParityShards > 64 {
		return nil, fmt.Errorf("%w: profile %v", ErrInvalidArgument, *p)
	}
	return &metapb.ECProfile{DataShards: uint32(p.DataShards), ParityShards: uint32(p.ParityShards), BlockSize: uint32(p.BlockSize)}, nil
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func captureFromProto(c *metapb.CaptureAttributes) *Capture {
	if c == nil {
		return nil
	}
	return &Capture{VehicleID: c.VehicleId, Camera: c.Camera, Start: unixNano(c.StartUnixNano),
		End: unixNano(c.EndUnixNano), Tags: slices.Clone(c.Tags)}
}

func captureToProto(c *Capture) *metapb.CaptureAttributes {
	if c == nil {
		return nil
	}
	return &metapb.CaptureAttributes{VehicleId: c.VehicleID, Camera: c.Camera, StartUnixNano: nanos(c.Start),
		EndUnixNano: nanos(c.End), Tags: slices.Clone(c.Tags)}
}

func shardStateFromProto(s metapb.ShardState) ShardState {
	switch s {
	case metapb.ShardState_SHARD_STATE_OK:
		return ShardOK
	case metapb.ShardState_SHARD_STATE_MISSING:
		return ShardMissing
	case metapb.ShardState_SHARD_STATE_CORRUPT:
		return ShardCorrupt
	}
	return ShardUnknown
}

// clipInfoFromProto describes a record whose parts are its parts from
// index first on, of count in all (a record with every part: 0 and
// len(r.Parts)).
func clipInfoFromProto(r *metapb.ClipRecord, first, count int) *ClipInfo {
	info := &ClipInfo{
		Bucket: r.Bucket, Key: r.Key, ClipID: hex.EncodeToString(r.ClipId), Generation: r.Generation,
		Size: int64(r.Size), CRC32C: r.ContentCrc32C, ContentType: r.ContentType,
		Metadata: maps.Clone(r.UserMetadata), Capture: captureFromProto(r.Capture), Created: unixNano(r.CreatedUnixNano),
		ETag: r.Etag, Checksums: maps.Clone(r.Checksums), PartCount: count,
	}
	if len(r.Parts) > 0 && first == 0 {
		p := r.Parts[0]
		info.Profile = profileFromProto(p.Profile)
		for _, s := range p.Shards {
			info.Shards = append(info.Shards, ShardInfo{Index: int(s.Index), Node: s.NodeId,
				ID: hex.EncodeToString(s.ShardId), Length: int64(s.Length), State: shardStateFromProto(s.State)})
		}
	}
	for _, p := range r.Parts {
		info.Parts = append(info.Parts, partInfoFromProto(p, 0))
	}
	return info
}

func partInfoFromProto(p *metapb.Part, created int64) PartInfo {
	return PartInfo{Number: int(p.GetNumber()), Offset: int64(p.GetOffset()), Size: int64(p.GetLength()), ETag: p.GetEtag(),
		Checksums: maps.Clone(p.GetChecksums()), Created: unixNano(created)}
}

func uploadInfoFromProto(u *metapb.UploadRecord) *UploadInfo {
	return &UploadInfo{Bucket: u.GetBucket(), Key: u.GetKey(), UploadID: hex.EncodeToString(u.GetUploadId()),
		ClipID: hex.EncodeToString(u.GetClipId()), Created: unixNano(u.GetCreatedUnixNano()),
		Expires: unixNano(u.GetExpiresUnixNano()), ContentType: u.GetContentType(), Metadata: maps.Clone(u.GetUserMetadata()),
		ChecksumAlgorithm: u.GetChecksumAlgorithm()}
}

func memberFromProto(m *metapb.Member) Member {
	return Member{ID: m.Id, RaftAddress: m.RaftAddress, GRPCAddress: m.GrpcAddress, Voter: m.Voter, Leader: m.Leader}
}

func nodeFromProto(n *metapb.StorageNode) StorageNode {
	node := StorageNode{ID: n.NodeId, Address: n.Address, Zone: n.Zone, Up: n.State == metapb.NodeState_NODE_STATE_UP,
		DownSince: unixNano(n.DownSinceUnixNano), DownReason: n.DownReason, AdminState: adminStates[n.AdminState],
		MaintenanceUntil: unixNano(n.MaintenanceUntilUnixNano), DrainDead: n.DrainDead,
		ShardsToMove: n.ShardsToMove, BytesToMove: n.BytesToMove, DrainBlocked: n.DrainBlocked, Capacity: n.Capacity, Free: n.Free, Shards: n.ShardCount,
		LastHeartbeat: unixNano(n.LastHeartbeatUnixNano), Lost: lossesFromProto(n.Losses),
		Corrupt: lossesFromProto(n.Corrupt)}
	for _, d := range n.Disks {
		if d.Failed != "" {
			node.FailedDisks = append(node.FailedDisks, FailedDisk{Path: d.Path, Reason: d.Failed})
		}
	}
	return node
}

func lossesFromProto(l *metapb.ShardLosses) ShardLosses {
	return ShardLosses{Scrub: l.GetScrub(), Inventory: l.GetInventory(), Read: l.GetRead()}
}

// RepairLimits bound the cluster's repairs.
type RepairLimits struct {
	Concurrency int    // repairs running at once, cluster-wide
	BytesPerSec uint64 // shard bytes planned per second; 0: no bound
}

func scrubFromProto(s *metapb.ScrubStatus) *ScrubStatus {
	if s == nil {
		return nil
	}
	return &ScrubStatus{Running: s.Running, PassesCompleted: s.PassesCompleted, BytesDone: s.BytesDone,
		BytesTotal: s.BytesTotal, ShardsDone: s.ShardsDone, ShardsTotal: s.ShardsTotal,
		LastPassEnd: unixNano(s.LastPassEndUnixNano), LastPassCorrupt: s.LastPassCorrupt, LastPassLost: s.LastPassLost,
		CorruptFound: s.CorruptFound,
		Interval:     time.Duration(s.IntervalMs) * time.Millisecond}
}

func movesFromProto(st *metapb.ClusterStatusResponse) MoveStatus {
	m := MoveStatus{QueueBytes: st.MoveQueueBytes, Paused: st.MoveLimits != nil && st.MoveLimits.Concurrency == 0,
		MovedShards: st.MovedShards, MovedBytes: st.MovedBytes, BytesPerSec: st.MoveBytesPerSec}
	if st.MoveEtaSeconds != nil {
		m.ETA, m.ETAKnown = time.Duration(*st.MoveEtaSeconds*float64(time.Second)), true
	}
	return m
}

func repairFromProto(st *metapb.ClusterStatusResponse) RepairStatus {
	r := RepairStatus{QueueShards: st.RepairQueueShards, QueueBytes: st.RepairQueueBytes,
		Paused: st.RepairLimits != nil && st.RepairLimits.Concurrency == 0, Since: unixNano(st.RepairStatsSinceUnixNano),
		RepairedShards: st.RepairedShards, RepairedBytes: st.RepairedBytes, BytesPerSec: st.RepairBytesPerSec}
	if st.RepairEtaSeconds != nil {
		r.ETA, r.ETAKnown = time.Duration(*st.RepairEtaSeconds*float64(time.Second)), true
	}
	return r
}
