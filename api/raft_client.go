package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Atoll's operator Raft API (an extension, after Consul's `operator raft` and `snapshot`):
// the masters' Raft configuration, removing a dead master, and saving and restoring the
// replicated state. Any master answers the GETs from its own view; the POSTs need the
// leader, and other masters answer them with 307 to it.
const (
	RaftPeersPath      = "/api/v1/raft/peers"
	RaftRemovePeerPath = "/api/v1/raft/remove-peer"
	RaftSnapshotPath   = "/api/v1/raft/snapshot"
)

// RaftPeers answers GET /api/v1/raft/peers (and a successful remove-peer): the Raft
// configuration as the answering master knows it, servers ordered by id.
type RaftPeers struct {
	Servers []RaftServer `json:"servers"`
	// LeaderID is the leader's server id, "" while none is known.
	LeaderID string `json:"leader_id"`
	// Term and LastIndex are the answering master's current term and last log index.
	Term      uint64 `json:"term"`
	LastIndex uint64 `json:"last_index"`
	// AnsweredBy is the answering master's server id: the only server whose State is
	// known first hand.
	AnsweredBy string `json:"answered_by"`
}

// RaftServer.State values.
const (
	RaftLeader      = "leader"
	RaftFollower    = "follower"
	RaftCandidate   = "candidate"
	RaftUnreachable = "unreachable"
	RaftUnknown     = "unknown"
)

// RaftServer.Suffrage values.
const (
	RaftVoter    = "voter"
	RaftNonvoter = "nonvoter"
	RaftStaging  = "staging"
)

// RaftServer is one server in the Raft configuration.
type RaftServer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// Suffrage is RaftVoter, RaftNonvoter or RaftStaging.
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
	// State is exact for the answering master only. Another server is RaftLeader when it is
	// the known leader; RaftUnreachable when the answering master leads and its heartbeats
	// to that server fail; otherwise RaftFollower while a leader is known (Raft cannot tell
	// a follower from a server that is down but not yet noticed) and RaftUnknown while none
	// is.
	State string `json:"state"`
}

// RaftRemovePeerRequest is the body of POST /api/v1/raft/remove-peer.
type RaftRemovePeerRequest struct {
	ID string `json:"id"`
}

// A snapshot archive is what GET /api/v1/raft/snapshot returns and POST takes: a gzipped
// tar holding, in this order, meta.json (a SnapshotMeta), state.bin (the Raft snapshot of
// the masters' state, as Raft stores it) and SHA256SUMS (sha256sum's format, over the other
// two), so that `tar xzf` and `sha256sum -c SHA256SUMS` check one by hand too.
const (
	// SnapshotFormat is SnapshotMeta.Format in every snapshot archive.
	SnapshotFormat = "atoll-raft-snapshot"
	// SnapshotFormatVersion is the archive layout version this build writes and reads.
	SnapshotFormatVersion = 1
	// MaxSnapshotStateSize bounds state.bin: far above the ~60 MB of 10,000 tasks with full
	// histories, low enough that a corrupt or hostile size cannot fill a master's disk.
	MaxSnapshotStateSize = 16 << 30

	snapshotMetaName  = "meta.json"
	snapshotStateName = "state.bin"
	snapshotSumsName  = "SHA256SUMS"
	maxSnapshotMeta   = 64 << 10
	maxSnapshotSums   = 4 << 10
	// maxSnapshotPadding bounds the zero blocks a tar writer may add after the archive's
	// end (GNU tar pads to 10 KiB records).
	maxSnapshotPadding = 64 << 10
)

// SnapshotMeta describes a snapshot archive: its meta.json.
type SnapshotMeta struct {
	// Format is SnapshotFormat; Version the archive layout version.
	Format  string `json:"format"`
	Version int    `json:"version"`
	// Master is the server id of the master that took the snapshot; Created when.
	Master  string    `json:"master"`
	Created time.Time `json:"created"`
	// ID is Raft's name for the snapshot; Index and Term those of the last log entry in it.
	ID    string `json:"id"`
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// RaftVersion is Raft's snapshot version of state.bin.
	RaftVersion int `json:"raft_version"`
	// Size is state.bin's length in bytes.
	Size int64 `json:"size"`
}

func (m SnapshotMeta) validate() error {
	switch {
	case m.Format != SnapshotFormat:
		return fmt.Errorf("format %q, want %q", m.Format, SnapshotFormat)
	case m.Version != SnapshotFormatVersion:
		return fmt.Errorf("archive version %d, this build reads version %d", m.Version, SnapshotFormatVersion)
	case m.Index == 0 || m.Term == 0:
		return fmt.Errorf("raft index %d, term %d: want both above 0", m.Index, m.Term)
	case m.Size < 0 || m.Size > MaxSnapshotStateSize:
		return fmt.Errorf("state size %d, want 0 to %d", m.Size, int64(MaxSnapshotStateSize))
	}
	return nil
}

// ErrBadSnapshot is wrapped by every error about a snapshot archive that is not well
// formed: not gzip or tar, entries missing, out of order or of the wrong size, an unknown
// format or version, or a checksum that does not match.
var ErrBadSnapshot = errors.New("bad snapshot archive")

func badSnapshot(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrBadSnapshot, fmt.Errorf(format, args...))
}

// WriteSnapshot writes a snapshot archive of meta (Format and Version filled in) and
// exactly meta.Size bytes of state to w.
func WriteSnapshot(w io.Writer, meta SnapshotMeta, state io.Reader) error {
	meta.Format, meta.Version = SnapshotFormat, SnapshotFormatVersion
	if err := meta.validate(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	rawMeta, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	rawMeta = append(rawMeta, '\n')
	// Snapshots are taken on live masters: CPU matters more than the last percent of size,
	// and the JSON state still shrinks several times over.
	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	tw := tar.NewWriter(gz)
	modTime := meta.Created.Truncate(time.Second)
	if err := writeEntry(tw, snapshotMetaName, int64(len(rawMeta)), modTime, bytes.NewReader(rawMeta)); err != nil {
		return err
	}
	stateHash := sha256.New()
	if err := writeEntry(tw, snapshotStateName, meta.Size, modTime, io.TeeReader(state, stateHash)); err != nil {
		return err
	}
	sums := formatSums(sha256.Sum256(rawMeta), [sha256.Size]byte(stateHash.Sum(nil)))
	if err := writeEntry(tw, snapshotSumsName, int64(len(sums)), modTime, strings.NewReader(sums)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

func writeEntry(tw *tar.Writer, name string, size int64, modTime time.Time, content io.Reader) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: modTime}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write snapshot %s: %w", name, err)
	}
	n, err := io.CopyN(tw, content, size)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("write snapshot %s: content ended after %d of %d bytes", name, n, size)
	}
	if err != nil {
		return fmt.Errorf("write snapshot %s: %w", name, err)
	}
	return nil
}

func formatSums(metaSum, stateSum [sha256.Size]byte) string {
	return fmt.Sprintf("%x  %s\n%x  %s\n", metaSum, snapshotMetaName, stateSum, snapshotStateName)
}

// ReadSnapshot reads a whole snapshot archive from r, copying state.bin to state, and
// returns its metadata once everything checked out. Errors about the archive wrap
// ErrBadSnapshot (and what r returned, such as *http.MaxBytesError); an error from state
// does not. state may have received bytes by then: use a temporary file.
func ReadSnapshot(r io.Reader, state io.Writer) (SnapshotMeta, error) {
	var meta SnapshotMeta
	gz, err := gzip.NewReader(r)
	if err != nil {
		return meta, badSnapshot("not gzip-compressed: %w", err)
	}
	tr := tar.NewReader(gz)

	if _, err := nextEntry(tr, snapshotMetaName, maxSnapshotMeta); err != nil {
		return meta, err
	}
	rawMeta, err := io.ReadAll(tr)
	if err != nil {
		return meta, badSnapshot("read %s: %w", snapshotMetaName, err)
	}
	if err := json.Unmarshal(rawMeta, &meta); err != nil {
		return meta, badSnapshot("%s: %w", snapshotMetaName, err)
	}
	if err := meta.validate(); err != nil {
		return meta, badSnapshot("%s: %w", snapshotMetaName, err)
	}

	hdr, err := nextEntry(tr, snapshotStateName, MaxSnapshotStateSize)
	if err != nil {
		return meta, err
	}
	if hdr.Size != meta.Size {
		return meta, badSnapshot("%s holds %d bytes, %s says %d", snapshotStateName, hdr.Size, snapshotMetaName, meta.Size)
	}
	stateHash := sha256.New()
	out := &errWriter{w: state}
	if _, err := io.Copy(io.MultiWriter(stateHash, out), tr); err != nil {
		if out.err != nil {
			return meta, fmt.Errorf("copy %s: %w", snapshotStateName, out.err)
		}
		return meta, badSnapshot("read %s: %w", snapshotStateName, err)
	}

	if _, err := nextEntry(tr, snapshotSumsName, maxSnapshotSums); err != nil {
		return meta, err
	}
	rawSums, err := io.ReadAll(tr)
	if err != nil {
		return meta, badSnapshot("read %s: %w", snapshotSumsName, err)
	}
	if err := checkSums(rawSums, map[string][sha256.Size]byte{
		snapshotMetaName:  sha256.Sum256(rawMeta),
		snapshotStateName: [sha256.Size]byte(stateHash.Sum(nil)),
	}); err != nil {
		return meta, err
	}

	if hdr, err := tr.Next(); err == nil {
		return meta, badSnapshot("unexpected entry %q after %s", hdr.Name, snapshotSumsName)
	} else if !errors.Is(err, io.EOF) {
		return meta, badSnapshot("after %s: %w", snapshotSumsName, err)
	}
	// Reading gzip to its end checks its CRC and length, and that nothing follows.
	padding, err := io.Copy(zeroWriter{}, io.LimitReader(gz, maxSnapshotPadding+1))
	if err != nil {
		return meta, badSnapshot("after the archive: %w", err)
	}
	if padding > maxSnapshotPadding {
		return meta, badSnapshot("more than %d bytes of padding after the archive", maxSnapshotPadding)
	}
	return meta, nil
}

// nextEntry reads the next tar header, which must be the regular file name of at most max
// bytes.
func nextEntry(tr *tar.Reader, name string, max int64) (*tar.Header, error) {
	hdr, err := tr.Next()
	if errors.Is(err, io.EOF) {
		return nil, badSnapshot("archive ends before %s", name)
	}
	if err != nil {
		return nil, badSnapshot("reading the entry for %s: %w", name, err)
	}
	if hdr.Name != name {
		return nil, badSnapshot("entry %q where %s belongs", hdr.Name, name)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil, badSnapshot("%s is not a regular file (type %q)", name, hdr.Typeflag)
	}
	if hdr.Size > max {
		return nil, badSnapshot("%s holds %d bytes, at most %d allowed", name, hdr.Size, max)
	}
	return hdr, nil
}

// checkSums compares a SHA256SUMS file with the sums computed for each name.
func checkSums(raw []byte, want map[string][sha256.Size]byte) error {
	seen := map[string]bool{}
	for i, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			sum, name, ok = strings.Cut(line, " *") // sha256sum's binary mode
		}
		if !ok {
			return badSnapshot("%s line %d: %q is not \"SUM  NAME\"", snapshotSumsName, i+1, line)
		}
		computed, known := want[name]
		if !known {
			return badSnapshot("%s line %d: unknown file %q", snapshotSumsName, i+1, name)
		}
		if seen[name] {
			return badSnapshot("%s lists %s twice", snapshotSumsName, name)
		}
		seen[name] = true
		listed, err := hex.DecodeString(sum)
		if err != nil || len(listed) != sha256.Size {
			return badSnapshot("%s line %d: %q is not a SHA-256 sum", snapshotSumsName, i+1, sum)
		}
		if !bytes.Equal(listed, computed[:]) {
			return badSnapshot("%s is corrupt: its SHA-256 is %x, %s says %s", name, computed, snapshotSumsName, sum)
		}
	}
	for name := range want {
		if !seen[name] {
			return badSnapshot("%s lacks %s", snapshotSumsName, name)
		}
	}
	return nil
}

// errWriter remembers the error its writer returned, to tell it from a reader's error.
type errWriter struct {
	w   io.Writer
	err error
}

func (w *errWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// zeroWriter accepts only zero bytes.
type zeroWriter struct{}

func (zeroWriter) Write(p []byte) (int, error) {
	for i, b := range p {
		if b != 0 {
			return i, errors.New("non-zero data")
		}
	}
	return len(p), nil
}

// RaftPeers returns the Raft configuration as the master at the client's address knows it.
func (c *Client) RaftPeers(ctx context.Context) (*RaftPeers, error) {
	resp, err := c.send(ctx, http.MethodGet, c.baseURL+RaftPeersPath, nil, 0, http.Header{"Accept": {"application/json"}}, true)
	if err != nil {
		return nil, fmt.Errorf("raft peers: %w", err)
	}
	return decodeRaftPeers(resp, "raft peers")
}

// RaftRemovePeer removes a server from the Raft configuration (on the leader) and returns
// the configuration after the change.
func (c *Client) RaftRemovePeer(ctx context.Context, id string) (*RaftPeers, error) {
	what := "remove raft peer " + id
	data, err := json.Marshal(RaftRemovePeerRequest{ID: id})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	resp, err := c.post(ctx, c.baseURL+RaftRemovePeerPath, data, nil, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return decodeRaftPeers(resp, what)
}

func decodeRaftPeers(resp *http.Response, what string) (*RaftPeers, error) {
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %w", what, replyError(resp))
	}
	var peers RaftPeers
	if err := decodeReply(resp, &peers); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &peers, nil
}

// SaveSnapshot has the master take a snapshot of the cluster's state and writes the
// archive to w, checking it on the way (layout, sizes, checksums). On error w may hold part
// of an archive: write to a temporary file and keep it only on success.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer) (*SnapshotMeta, error) {
	resp, err := c.send(ctx, http.MethodGet, c.baseURL+RaftSnapshotPath, nil, 0, http.Header{"Accept": {"application/gzip"}}, true)
	if err != nil {
		return nil, fmt.Errorf("save snapshot: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("save snapshot: %w", replyError(resp))
	}
	defer discard(resp)
	out := &errWriter{w: w}
	meta, err := ReadSnapshot(io.TeeReader(resp.Body, out), io.Discard)
	if out.err != nil {
		return nil, fmt.Errorf("save snapshot: %w", out.err)
	}
	if err != nil {
		return nil, fmt.Errorf("save snapshot: %w", err)
	}
	return &meta, nil
}

// RestoreSnapshot replaces the whole cluster's state with a snapshot archive (on the
// leader) and returns the metadata of what was restored. archive is read from its start
// (again after a redirect).
func (c *Client) RestoreSnapshot(ctx context.Context, archive io.ReadSeeker) (*SnapshotMeta, error) {
	size, err := archive.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("restore snapshot: size of the archive: %w", err)
	}
	// With 100-continue a master that redirects answers before the archive is sent.
	header := http.Header{
		"Content-Type": {"application/gzip"},
		"Accept":       {"application/json"},
		"Expect":       {"100-continue"},
	}
	resp, err := c.send(ctx, http.MethodPost, c.baseURL+RaftSnapshotPath, archive, size, header, true)
	if err != nil {
		return nil, fmt.Errorf("restore snapshot: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("restore snapshot: %w", replyError(resp))
	}
	var meta SnapshotMeta
	if err := decodeReply(resp, &meta); err != nil {
		return nil, fmt.Errorf("restore snapshot: %w", err)
	}
	return &meta, nil
}
