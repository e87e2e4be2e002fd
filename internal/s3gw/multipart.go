package s3gw

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"

	"github.com/clipstore/clipstore/client"
)

// S3's limits on multipart uploads.
const (
	maxParts     = 10000
	minPartSize  = 5 << 20 // every part but the last
	maxPartSize  = 5 << 30
	maxListParts = 1000 // ListParts' default and largest max-parts
	// maxCompleteBody bounds a CompleteMultipartUpload's XML: 10000 parts
	// with their ETags and a checksum each take about 2 MiB.
	maxCompleteBody = 4 << 20
)

// uploadChecksum is the checksum a multipart upload asked for when it was
// created: every part is hashed with alg, and the object's checksum is
// made of the parts' when the upload completes.
type uploadChecksum struct {
	alg *checksumAlg // nil: none
	// full is FULL_OBJECT: the object's checksum is the CRC of its bytes,
	// combined from the parts' CRCs. Otherwise COMPOSITE: the checksum of
	// the parts' checksums, with "-N".
	full bool
}

func (c uploadChecksum) typeName() string {
	if c.full {
		return "FULL_OBJECT"
	}
	return "COMPOSITE"
}

// requestedChecksum reads the x-amz-checksum-algorithm and
// x-amz-checksum-type of a CreateMultipartUpload.
func requestedChecksum(h http.Header) (uploadChecksum, error) {
	var c uploadChecksum
	name, typ := h.Get("X-Amz-Checksum-Algorithm"), strings.ToUpper(h.Get("X-Amz-Checksum-Type"))
	if name == "" {
		if typ != "" {
			return c, errInvalidRequest.with("The x-amz-checksum-type header requires x-amz-checksum-algorithm.")
		}
		return c, nil
	}
	if c.alg = checksumAlgByName(name); c.alg == nil {
		return c, errInvalidRequest.with("Checksum algorithm %q is not supported.", truncate(name))
	}
	_, isCRC := crcPolys[c.alg.name]
	switch typ {
	case "":
		c.full = c.alg.name == "crc64nvme" // the only type S3 allows it
	case "COMPOSITE":
		if c.alg.name == "crc64nvme" {
			return c, errInvalidRequest.with("The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.")
		}
	case "FULL_OBJECT":
		if !isCRC {
			return c, errInvalidRequest.with("The FULL_OBJECT checksum type cannot be used with the %s checksum algorithm.", c.alg.name)
		}
		c.full = true
	default:
		return c, errInvalidRequest.with("Value for x-amz-checksum-type header is invalid.")
	}
	return c, nil
}

// recordedChecksum reads what CreateMultipartUpload recorded with the
// upload ("crc32 COMPOSITE").
func recordedChecksum(recorded string) uploadChecksum {
	name, typ, _ := strings.Cut(recorded, " ")
	return uploadChecksum{alg: checksumAlgByName(name), full: typ == "FULL_OBJECT"}
}

// partDigests makes the digests of an UploadPart agree with the upload's
// checksum: a part of an upload with one is hashed with its algorithm
// whether the request sends the checksum or not; a different one is
// refused, as S3 does.
func (c uploadChecksum) partDigests(want *digests) error {
	switch {
	case c.alg == nil:
	case want.alg == nil:
		want.alg = c.alg // computed and stored, not checked
	case want.alg != c.alg:
		return errInvalidRequest.with("Checksum Type mismatch occurred, expected checksum Type: %s, actual checksum Type: %s",
			c.alg.name, want.alg.name)
	}
	return nil
}

type initiateUploadResult struct {
	XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
	NS       string   `xml:"xmlns,attr"`
	Bucket   string
	Key      string
	UploadID string `xml:"UploadId"`
}

func (g *Gateway) createUpload(w *response, req *request) error {
	opts, err := writeOptions(req)
	if err != nil {
		return err
	}
	cs, err := requestedChecksum(req.Header)
	if err != nil {
		return err
	}
	if cs.alg != nil {
		opts.ChecksumAlgorithm = cs.alg.name + " " + cs.typeName()
	}
	up, err := g.cfg.Client.CreateUpload(req.Context(), req.bucket, req.key, opts)
	if errors.Is(err, client.ErrNotFound) {
		return errNoSuchBucket
	}
	if err != nil {
		return err
	}
	if cs.alg != nil {
		w.Header().Set("x-amz-checksum-algorithm", strings.ToUpper(cs.alg.name))
		w.Header().Set("x-amz-checksum-type", cs.typeName())
	}
	writeXML(w, http.StatusOK, initiateUploadResult{NS: xmlNS, Bucket: req.bucket, Key: req.key, UploadID: up.UploadID})
	return nil
}

// parsePartNumber reads a partNumber parameter.
func parsePartNumber(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxParts {
		return 0, errInvalidArgument.with("Part number must be an integer between 1 and 10000, inclusive")
	}
	return n, nil
}

// uploadPart streams a part to the cluster as putObject does an object:
// hashed beside the upload, verified before the part is recorded.
func (g *Gateway) uploadPart(w *response, req *request) error {
	num, err := parsePartNumber(req.query.Get("partNumber"))
	if err != nil {
		return err
	}
	body, counted, err := req.body()
	switch {
	case err != nil:
		return err
	case body.Size() < 0:
		return errMissingLength
	case body.Size() > maxPartSize:
		return errEntityTooLarge
	}
	want, err := parseDigests(req.Header, body.DeclaredTrailers())
	if err != nil {
		return err
	}
	up, err := g.upload(req)
	if err != nil {
		return err
	}
	if err := recordedChecksum(up.ChecksumAlgorithm).partDigests(want); err != nil {
		return err
	}
	if want.fast, err = g.fastETags(req); err != nil {
		return err
	}
	want.part, want.newMD5 = true, g.newMD5
	db := newDigestedBody(body, counted, want)
	defer db.stop()
	opts := &client.PartOptions{SizeHint: body.Size(), Finish: db.finish}
	id := req.query.Get("uploadId")
	if _, err := g.cfg.Client.PutPart(req.Context(), req.bucket, req.key, id, num, db.d, opts); err != nil {
		return g.uploadError(req.Context(), req, err)
	}
	db.setHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	return nil
}

// upload returns the upload the request names (?uploadId=).
func (g *Gateway) upload(req *request) (*client.UploadInfo, error) {
	up, _, _, err := g.cfg.Client.ListParts(req.Context(), req.bucket, req.key, req.query.Get("uploadId"), maxParts, 1)
	if err != nil {
		return nil, g.uploadError(req.Context(), req, err)
	}
	return up, nil
}

// uploadError maps a failed call on an upload: meta's NotFound is
// NoSuchUpload, unless the bucket is missing.
func (g *Gateway) uploadError(ctx context.Context, req *request, err error) error {
	if !errors.Is(err, client.ErrNotFound) {
		return err
	}
	if berr := g.checkBucket(ctx, req.bucket); berr != nil {
		return berr
	}
	return errNoSuchUpload
}

func (g *Gateway) abortUpload(w *response, req *request) error {
	if err := g.cfg.Client.AbortUpload(req.Context(), req.bucket, req.key, req.query.Get("uploadId")); err != nil {
		return g.uploadError(req.Context(), req, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checksumFields are the Checksum<ALG> elements of S3's documents.
type checksumFields struct {
	ChecksumCRC32     string `xml:",omitempty"`
	ChecksumCRC32C    string `xml:",omitempty"`
	ChecksumCRC64NVME string `xml:",omitempty"`
	ChecksumSHA1      string `xml:",omitempty"`
	ChecksumSHA256    string `xml:",omitempty"`
}

// field returns the element of the algorithm.
func (c *checksumFields) field(alg string) *string {
	switch alg {
	case "crc32":
		return &c.ChecksumCRC32
	case "crc32c":
		return &c.ChecksumCRC32C
	case "crc64nvme":
		return &c.ChecksumCRC64NVME
	case "sha1":
		return &c.ChecksumSHA1
	case "sha256":
		return &c.ChecksumSHA256
	}
	return new(string)
}

func checksumFieldsOf(sums map[string]string) checksumFields {
	var c checksumFields
	for alg, v := range sums {
		*c.field(alg) = v
	}
	return c
}

type completeUploadRequest struct {
	XMLName xml.Name        `xml:"CompleteMultipartUpload"`
	Parts   []completedPart `xml:"Part"`
}

type completedPart struct {
	PartNumber int
	ETag       string
	checksumFields
}

type completeUploadResult struct {
	XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
	NS       string   `xml:"xmlns,attr"`
	Location string
	Bucket   string
	Key      string
	ETag     string
	checksumFields
	ChecksumType string `xml:",omitempty"`
}

// completeUpload makes the named parts the object. The ETag and checksum
// are made here from those the parts stored, and meta checks in the same
// Raft entry that commits the object that every part is still the one
// they were made from (its ETag): a part uploaded again meanwhile fails
// the completion. The answer follows the commit directly (S3 may send
// whitespace while it assembles; a commit here is one Raft entry).
func (g *Gateway) completeUpload(w *response, req *request) error {
	cond, err := parsePutCondition(req.Header)
	if err != nil {
		return err
	}
	named, err := readCompleteRequest(req)
	if err != nil {
		return err
	}
	id := req.query.Get("uploadId")
	up, parts, err := g.uploadParts(req, id)
	if errors.Is(err, errNoSuchUpload) {
		// Completed already? A client that missed the answer sends the
		// Complete again: meta answers with the clip the upload became.
		chosen := make([]client.CompletedPart, 0, len(named))
		for _, p := range named {
			chosen = append(chosen, client.CompletedPart{Number: p.PartNumber, ETag: p.ETag})
		}
		if info, cerr := g.cfg.Client.CompleteUpload(req.Context(), req.bucket, req.key, id, chosen, nil); cerr == nil {
			g.writeCompleted(w, req, info.ETag, info.Checksums, "")
			return nil
		}
	}
	if err != nil {
		return err
	}
	a, err := assemble(named, parts, recordedChecksum(up.ChecksumAlgorithm))
	if err != nil {
		return err
	}
	if err := a.checkRequest(req.Header); err != nil {
		return err
	}
	fast, err := g.fastETags(req)
	if err != nil {
		return err
	}
	if fast {
		a.etag = fastObjectETag(up.ClipID, len(a.chosen))
	}
	gen, err := g.checkPutCondition(req, cond)
	if err != nil {
		return err
	}
	opts := &client.CompleteOptions{ETag: a.etag, Checksums: a.sums, IfGenerationMatch: gen}
	if _, err := g.cfg.Client.CompleteUpload(req.Context(), req.bucket, req.key, id, a.chosen, opts); err != nil {
		return g.completeError(req, err, gen)
	}
	typ := ""
	if len(a.sums) > 0 {
		typ = a.cs.typeName()
	}
	g.writeCompleted(w, req, a.etag, a.sums, typ)
	return nil
}

// writeCompleted answers a completed upload: CompleteMultipartUploadResult.
func (g *Gateway) writeCompleted(w *response, req *request, etag string, sums map[string]string, checksumType string) {
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	res := completeUploadResult{NS: xmlNS, Location: scheme + "://" + req.Host + req.URL.EscapedPath(), Bucket: req.bucket,
		Key: req.key, ETag: quoteETag(etag), checksumFields: checksumFieldsOf(sums)}
	res.ChecksumType = checksumType
	writeXML(w, http.StatusOK, res)
}

// readCompleteRequest reads the parts a CompleteMultipartUpload names,
// which must ascend.
func readCompleteRequest(req *request) ([]completedPart, error) {
	b, err := readSmallBody(req, maxCompleteBody)
	if err != nil {
		return nil, err
	}
	return parseCompleteRequest(b)
}

// parseCompleteRequest decodes the XML of a CompleteMultipartUpload.
func parseCompleteRequest(b []byte) ([]completedPart, error) {
	var doc completeUploadRequest
	if err := xml.Unmarshal(b, &doc); err != nil || len(doc.Parts) == 0 {
		return nil, errMalformedXML
	}
	prev := 0
	for _, p := range doc.Parts {
		if p.PartNumber < 1 || p.PartNumber > maxParts {
			return nil, errInvalidArgument.with("Part number must be an integer between 1 and 10000, inclusive")
		}
		if p.PartNumber <= prev {
			return nil, errInvalidPartOrder
		}
		prev = p.PartNumber
	}
	return doc.Parts, nil
}

// uploadParts returns the upload and all of its parts, by number.
func (g *Gateway) uploadParts(req *request, id string) (*client.UploadInfo, map[int]client.PartInfo, error) {
	parts := map[int]client.PartInfo{}
	after := 0
	for {
		up, page, more, err := g.cfg.Client.ListParts(req.Context(), req.bucket, req.key, id, after, maxListParts)
		if err != nil {
			return nil, nil, g.uploadError(req.Context(), req, err)
		}
		for _, p := range page {
			parts[p.Number] = p
			after = p.Number
		}
		if !more || len(page) == 0 {
			return up, parts, nil
		}
	}
}

// assembly is what a completion stores: the parts chosen, the object's
// ETag (the MD5 of the parts' binary MD5s, hex, with "-N") and checksum.
type assembly struct {
	cs     uploadChecksum
	chosen []client.CompletedPart
	size   int64
	etag   string
	sums   map[string]string // nil if the upload has no checksum
}

// assemble checks the named parts against those uploaded (each must exist
// with the ETag and any checksum the request gives; then all but the last
// must be at least minPartSize) and makes the object's ETag and checksum.
func assemble(named []completedPart, uploaded map[int]client.PartInfo, cs uploadChecksum) (*assembly, error) {
	parts := make([]client.PartInfo, len(named))
	for i, np := range named {
		p, ok := uploaded[np.PartNumber]
		if !ok || !partMatches(np, p) {
			return nil, errInvalidPart.with("One or more of the specified parts could not be found. The part may not have been uploaded, "+
				"or the specified entity tag may not match the part's entity tag (part %d).", np.PartNumber)
		}
		parts[i] = p
	}
	a := &assembly{cs: cs}
	md5s := md5.New()
	sum := newPartsChecksum(cs)
	for i, p := range parts {
		if i < len(parts)-1 && p.Size < minPartSize {
			return nil, errEntityTooSmall.with("Your proposed upload is smaller than the minimum allowed object size: part %d has %d bytes, "+
				"every part but the last must have at least %d.", p.Number, p.Size, minPartSize)
		}
		a.chosen = append(a.chosen, client.CompletedPart{Number: p.Number, ETag: p.ETag})
		a.size += p.Size
		md5s.Write(etagBytes(p.ETag))
		sum.add(p)
	}
	a.etag = fmt.Sprintf("%x-%d", md5s.Sum(nil), len(parts))
	a.sums = sum.sums()
	return a, nil
}

// partMatches reports whether the part a completion names is the part
// uploaded: the same ETag (quotes aside) and the same checksums, where
// the request gives them.
func partMatches(named completedPart, p client.PartInfo) bool {
	if e := strings.Trim(named.ETag, `"`); e != "" && e != p.ETag {
		return false
	}
	for _, alg := range checksumAlgs {
		if v := *named.field(alg.name); v != "" && v != p.Checksums[alg.name] {
			return false
		}
	}
	return true
}

// etagBytes is the binary MD5 of a part's hex ETag; an ETag that is no
// MD5 (a part written without one) counts as its text.
func etagBytes(etag string) []byte {
	if b, err := hex.DecodeString(etag); err == nil && len(b) == md5.Size {
		return b
	}
	return []byte(etag)
}

// checkRequest compares the object checksum and size a completion
// request declares, if any, with those of the assembly.
func (a *assembly) checkRequest(h http.Header) error {
	if v := h.Get("X-Amz-Mp-Object-Size"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n != a.size {
			return errInvalidRequest.with("The provided x-amz-mp-object-size %s does not match the object's %d bytes.", truncate(v), a.size)
		}
	}
	if a.cs.alg == nil {
		return nil
	}
	if v := h.Get(a.cs.alg.header()); v != "" && !a.checksumIs(v) {
		return errBadDigest.with("The %s you specified did not match the calculated checksum.", strings.ToUpper(a.cs.alg.name))
	}
	return nil
}

// checksumIs reports whether v, the object checksum a completion request
// declares, is the assembly's. A composite checksum may be declared
// without its "-N" (minio-go sends it so).
func (a *assembly) checksumIs(v string) bool {
	want := a.sums[a.cs.alg.name]
	base, _, composite := strings.Cut(want, "-")
	return v == want || (composite && !a.cs.full && v == base)
}

// completeError maps a failed CompleteUpload. ErrPrecondition is a part
// that is no longer the one named (uploaded again, or gone), unless the
// request's condition on the key failed.
func (g *Gateway) completeError(req *request, err error, gen *uint64) error {
	switch {
	case errors.Is(err, client.ErrNotFound):
		return g.uploadError(req.Context(), req, err)
	case !errors.Is(err, client.ErrPrecondition) || errors.Is(err, client.ErrDeadlinePassed):
		return err
	case gen != nil:
		if perr := g.putError(req.Context(), req, err, gen); errors.Is(perr, errPrecondition) {
			return perr
		}
	}
	return errInvalidPart.with("%s", clientMessage(err))
}

// partsChecksum makes a multipart object's checksum of its parts': the
// checksum of their checksums (COMPOSITE), or their CRCs combined
// (FULL_OBJECT).
type partsChecksum struct {
	cs   uploadChecksum
	comp hash.Hash // COMPOSITE
	crc  uint64    // FULL_OBJECT
	n    int
	ok   bool // every part so far has the checksum
}

func newPartsChecksum(cs uploadChecksum) *partsChecksum {
	s := &partsChecksum{cs: cs, ok: cs.alg != nil}
	if s.ok && !cs.full {
		s.comp = cs.alg.new()
	}
	return s
}

func (s *partsChecksum) add(p client.PartInfo) {
	if !s.ok {
		return
	}
	raw, err := base64.StdEncoding.DecodeString(p.Checksums[s.cs.alg.name])
	if err != nil || len(raw) != s.cs.alg.size {
		s.ok = false // a part not written through the gateway
		return
	}
	s.n++
	if s.comp != nil {
		s.comp.Write(raw)
		return
	}
	v := beUint(raw)
	if s.n == 1 {
		s.crc = v
		return
	}
	s.crc = crcCombine(s.crc, v, p.Size, crcPolys[s.cs.alg.name], 8*s.cs.alg.size)
}

// sums returns the object's checksum by algorithm, nil if there is none.
func (s *partsChecksum) sums() map[string]string {
	if !s.ok {
		return nil
	}
	if s.comp != nil {
		return map[string]string{s.cs.alg.name: fmt.Sprintf("%s-%d", base64.StdEncoding.EncodeToString(s.comp.Sum(nil)), s.n)}
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, s.crc)
	return map[string]string{s.cs.alg.name: base64.StdEncoding.EncodeToString(b[8-s.cs.alg.size:])}
}

// beUint reads a big-endian CRC of 4 or 8 bytes.
func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

type listPartsResult struct {
	XMLName              xml.Name `xml:"ListPartsResult"`
	NS                   string   `xml:"xmlns,attr"`
	Bucket               string
	Key                  string
	UploadID             string `xml:"UploadId"`
	Initiator            owner
	Owner                owner
	StorageClass         string
	PartNumberMarker     int
	NextPartNumberMarker int
	MaxParts             int
	IsTruncated          bool
	ChecksumAlgorithm    string      `xml:",omitempty"`
	ChecksumType         string      `xml:",omitempty"`
	Parts                []partEntry `xml:"Part"`
}

type partEntry struct {
	PartNumber   int
	LastModified string
	ETag         string
	Size         int64
	checksumFields
}

func (g *Gateway) listParts(w *response, req *request) error {
	marker, err := intParam(req, "part-number-marker", 0)
	if err != nil {
		return err
	}
	maxN, err := intParam(req, "max-parts", maxListParts)
	if err != nil {
		return err
	}
	maxN = min(maxN, maxListParts)
	up, parts, more, err := g.cfg.Client.ListParts(req.Context(), req.bucket, req.key, req.query.Get("uploadId"), marker, max(maxN, 1))
	if err != nil {
		return g.uploadError(req.Context(), req, err)
	}
	if maxN == 0 { // a page of nothing, truncated if there is something
		more, parts = len(parts) > 0, nil
	}
	me := owner{ID: req.auth.AccessKey, DisplayName: req.auth.AccessKey}
	res := listPartsResult{NS: xmlNS, Bucket: req.bucket, Key: req.key, UploadID: up.UploadID, Initiator: me, Owner: me,
		StorageClass: "STANDARD", PartNumberMarker: marker, MaxParts: maxN, IsTruncated: more}
	if cs := recordedChecksum(up.ChecksumAlgorithm); cs.alg != nil {
		res.ChecksumAlgorithm, res.ChecksumType = strings.ToUpper(cs.alg.name), cs.typeName()
	}
	for _, p := range parts {
		res.Parts = append(res.Parts, partEntry{PartNumber: p.Number, LastModified: p.Created.UTC().Format(s3Time),
			ETag: quoteETag(p.ETag), Size: p.Size, checksumFields: checksumFieldsOf(p.Checksums)})
		res.NextPartNumberMarker = p.Number
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

// intParam reads a non-negative integer query parameter (def if absent).
func intParam(req *request, name string, def int) (int, error) {
	if !req.query.Has(name) {
		return def, nil
	}
	n, err := strconv.Atoi(req.query.Get(name))
	if err != nil || n < 0 {
		return 0, errInvalidArgument.with("Provided %s not an integer or within integer range", name)
	}
	return n, nil
}

type listUploadsResult struct {
	XMLName            xml.Name `xml:"ListMultipartUploadsResult"`
	NS                 string   `xml:"xmlns,attr"`
	Bucket             string
	KeyMarker          string
	UploadIDMarker     string `xml:"UploadIdMarker"`
	NextKeyMarker      string `xml:",omitempty"`
	NextUploadIDMarker string `xml:"NextUploadIdMarker,omitempty"`
	Delimiter          string `xml:",omitempty"`
	Prefix             string
	MaxUploads         int
	EncodingType       string `xml:",omitempty"`
	IsTruncated        bool
	Uploads            []uploadEntry `xml:"Upload"`
	CommonPrefixes     []commonPrefix
}

type uploadEntry struct {
	Key               string
	UploadID          string `xml:"UploadId"`
	Initiator         owner
	Owner             owner
	StorageClass      string
	Initiated         string
	ChecksumAlgorithm string `xml:",omitempty"`
	ChecksumType      string `xml:",omitempty"`
}

func (g *Gateway) listUploads(w *response, req *request) error {
	q := req.query
	p, err := parseListParams(q)
	if err != nil {
		return err
	}
	if p.maxKeys, err = intParam(req, "max-uploads", maxListKeys); err != nil {
		return err
	}
	p.maxKeys = min(p.maxKeys, maxListKeys)
	keyMarker, idMarker := q.Get("key-marker"), q.Get("upload-id-marker")
	if keyMarker == "" {
		idMarker = "" // S3 ignores it without a key marker
	}
	l, err := g.uploadsPage(req.Context(), req.bucket, p, keyMarker, idMarker)
	if err != nil {
		return err
	}
	enc := p.encoder()
	res := listUploadsResult{NS: xmlNS, Bucket: req.bucket, KeyMarker: enc(keyMarker), UploadIDMarker: idMarker,
		Delimiter: enc(p.delimiter), Prefix: enc(p.prefix), MaxUploads: p.maxKeys, IsTruncated: l.truncated}
	if p.urlEncode {
		res.EncodingType = "url"
	}
	if l.truncated {
		res.NextKeyMarker, res.NextUploadIDMarker = enc(l.nextKey), l.nextID
	}
	me := owner{ID: req.auth.AccessKey, DisplayName: req.auth.AccessKey}
	for _, u := range l.uploads {
		e := uploadEntry{Key: enc(u.Key), UploadID: u.UploadID, Initiator: me, Owner: me, StorageClass: "STANDARD",
			Initiated: u.Created.UTC().Format(s3Time)}
		if cs := recordedChecksum(u.ChecksumAlgorithm); cs.alg != nil {
			e.ChecksumAlgorithm, e.ChecksumType = strings.ToUpper(cs.alg.name), cs.typeName()
		}
		res.Uploads = append(res.Uploads, e)
	}
	for _, cp := range l.prefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: enc(cp)})
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

// uploadListing is one page of ListMultipartUploads: uploads and common
// prefixes in key order, at most maxKeys of them together.
type uploadListing struct {
	uploads         []client.UploadInfo
	prefixes        []string
	truncated       bool
	nextKey, nextID string // where the next page starts: the last entry (a common prefix has no id)
}

func (l *uploadListing) count() int { return len(l.uploads) + len(l.prefixes) }

// uploadsPage lists one page of uploads after (keyMarker, idMarker), those
// with p.delimiter after the prefix rolled up into common prefixes. A page
// of meta's that ends within a common prefix is followed by a listing
// after the whole prefix.
func (g *Gateway) uploadsPage(ctx context.Context, bucket string, p listParams, keyMarker, idMarker string) (*uploadListing, error) {
	l := &uploadListing{}
	if p.maxKeys == 0 {
		return l, g.checkBucket(ctx, bucket)
	}
	if cp := p.commonPrefix(keyMarker); cp != "" {
		keyMarker, idMarker = pastPrefix(cp), ""
	}
	for {
		page, more, err := g.cfg.Client.ListUploads(ctx, bucket, p.prefix, keyMarker, idMarker, maxListKeys)
		if err != nil {
			return nil, err
		}
		for _, u := range page {
			if l.add(u, p) {
				l.truncated = true
				return l, nil
			}
		}
		if !more || len(page) == 0 {
			return l, nil
		}
		last := page[len(page)-1]
		keyMarker, idMarker = last.Key, last.UploadID
		if cp := p.commonPrefix(last.Key); cp != "" {
			keyMarker, idMarker = pastPrefix(cp), ""
		}
	}
}

// add adds an upload to the page, or its common prefix unless the page
// ends with it; it reports whether the page was full already.
func (l *uploadListing) add(u client.UploadInfo, p listParams) (full bool) {
	cp := p.commonPrefix(u.Key)
	switch {
	case cp != "" && len(l.prefixes) > 0 && l.prefixes[len(l.prefixes)-1] == cp:
		return false
	case l.count() == p.maxKeys:
		return true
	case cp != "":
		l.prefixes = append(l.prefixes, cp)
		l.nextKey, l.nextID = cp, ""
	default:
		l.uploads = append(l.uploads, u)
		l.nextKey, l.nextID = u.Key, u.UploadID
	}
	return false
}
