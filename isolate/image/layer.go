package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// layerJob is one layer of a pull: its blob, the digest naming the blob (compressed) and
// the one the config names for its content (uncompressed).
type layerJob struct {
	layer  v1.Layer
	digest v1.Hash
	diffID v1.Hash
	size   int64
}

// ensureLayer unpacks job's layer into the cache unless it is there already. The per-digest
// lock makes concurrent pulls of the same layer unpack it once: the second waits and then
// finds it.
func (s *Store) ensureLayer(ctx context.Context, display string, job layerJob) error {
	unlock, err := s.layerLocks.lock(ctx, job.digest.Hex)
	if err != nil {
		return fmt.Errorf("layer %s: %w", job.digest, err)
	}
	defer unlock()
	dir := s.layerDir(job.digest.Hex)
	if _, err := os.Lstat(dir); err == nil {
		s.cacheHits.Add(1)
		return nil
	}
	tmp, err := os.MkdirTemp(s.tmpDir(), job.digest.Hex[:12]+"-")
	if err != nil {
		return fmt.Errorf("layer %s: %w", job.digest, err)
	}
	defer os.RemoveAll(tmp)
	// MkdirTemp makes 0700; a layer without an entry for its root must still be enterable.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("layer %s: %w", job.digest, err)
	}
	start := time.Now()
	if err := unpackBlob(ctx, tmp, job); err != nil {
		return fmt.Errorf("layer %s: %w", job.digest, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("layer %s: %w", job.digest, err)
	}
	s.unpacked.Add(1)
	s.downloaded.Add(job.size)
	s.log.Info("layer unpacked", "image", display, "layer", job.digest.String(), "bytes", job.size,
		"duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// Magic numbers of the compressions layers come in; anything else is read as a plain tar.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// unpackBlob streams the layer's blob into dir and checks both its digests. The blob is read
// to its end even after a failure, so that a tampered blob is reported as a digest mismatch
// rather than as whatever its corruption made the decompressor or the tar reader say.
func unpackBlob(ctx context.Context, dir string, job layerJob) error {
	blob, err := job.layer.Compressed()
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer blob.Close()
	compressed := &digestReader{r: blob, hash: sha256.New()}
	buffered := bufio.NewReaderSize(compressed, 1<<20)
	content, closeContent, err := decompress(buffered)
	if err == nil {
		defer closeContent()
		uncompressed := &digestReader{r: content, hash: sha256.New()}
		err = unpackLayer(dir, uncompressed)
		if err == nil {
			// The tar's end-of-archive marker may leave padding unread; the digest covers it.
			_, err = io.Copy(io.Discard, uncompressed)
		}
		if err == nil {
			err = uncompressed.check(job.diffID, -1, "content (diff id)")
		}
	}
	if _, drainErr := io.Copy(io.Discard, buffered); drainErr != nil && ctx.Err() != nil {
		return fmt.Errorf("download: %w", ctx.Err())
	}
	if mismatch := compressed.check(job.digest, job.size, "blob"); mismatch != nil {
		return mismatch
	}
	if compressed.err != nil && compressed.err != io.EOF {
		return fmt.Errorf("download: after %d of %d bytes: %w", compressed.n, job.size, compressed.err)
	}
	return err
}

// decompress picks the decompressor by the stream's first bytes.
func decompress(r *bufio.Reader) (io.Reader, func(), error) {
	magic, err := r.Peek(len(zstdMagic))
	if err != nil && err != io.EOF {
		return nil, nil, fmt.Errorf("read blob: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	default:
		return r, func() {}, nil
	}
}

// digestReader hashes and counts what passes through it and keeps the first error it saw.
type digestReader struct {
	r    io.Reader
	hash hash.Hash
	n    int64
	err  error
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.hash.Write(p[:n])
	d.n += int64(n)
	if err != nil && d.err == nil {
		d.err = err
	}
	return n, err
}

// check reports a digest mismatch if the bytes read so far do not hash to want. That is
// decided only once the stream ended (or, with size ≥ 0, once size bytes came): a transfer
// cut short by the network is not a mismatch. A stream that ended cleanly short of size is.
func (d *digestReader) check(want v1.Hash, size int64, what string) error {
	got := "sha256:" + hex.EncodeToString(d.hash.Sum(nil))
	complete := d.err == io.EOF || size >= 0 && d.n == size
	if size >= 0 && d.n != size && !interrupted(d.err) {
		return fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrDigestMismatch, what, d.n, size)
	}
	if complete && got != want.String() {
		return fmt.Errorf("%w: %s hashes to %s, want %s (corrupt or tampered)", ErrDigestMismatch, what, got, want)
	}
	return nil
}

// interrupted reports whether err looks like a transfer that broke off, as opposed to a
// stream that ended where its sender meant it to.
func interrupted(err error) bool {
	var netErr net.Error
	return err == nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &netErr) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// keyedMutex is a set of mutexes by name whose Lock honours a context.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	held chan struct{}
	refs int
}

func (k *keyedMutex) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{held: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	select {
	case l.held <- struct{}{}:
		return func() { <-l.held; k.release(key, l) }, nil
	case <-ctx.Done():
		k.release(key, l)
		return nil, ctx.Err()
	}
}

func (k *keyedMutex) release(key string, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(k.locks, key)
	}
}
