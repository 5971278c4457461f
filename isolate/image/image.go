// Package image gives tasks their root filesystem from OCI and Docker images: it pulls
// images from any registry, verifies every blob by digest, unpacks each layer once into a
// cache shared by all tasks (keyed by layer digest) and mounts a copy-on-write overlayfs
// per container on top of the cached layers.
//
// Layout under Config.Dir:
//
//	layers/<sha256 hex>/         one unpacked layer, complete once it has this name
//	images/<sha256 of name>.json what a reference resolved to: manifest digest, layers, config
//	containers/<id>/{upper,work,rootfs}
//	tmp/                         layers being unpacked
//	lock                         held by the one Store using the directory
//
// Whiteouts are converted to overlayfs form while a layer is unpacked (".wh.NAME" becomes
// a character device 0/0, ".wh..wh..opq" the xattr trusted.overlay.opaque=y on its
// directory), so that layers stay separate lower directories and a second container of an
// image starts without copying anything. That needs root and a filesystem with trusted
// xattrs and overlayfs upper-directory support (ext4, xfs, btrfs) for Config.Dir.
package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sys/unix"
)

// Sentinel errors callers branch on; every error from Pull and RootFS also says which
// image, registry or layer it is about, fit to be a TASK_FAILED message.
var (
	// ErrNotFound: the registry has no such repository, tag or digest.
	ErrNotFound = errors.New("image not found")
	// ErrUnreachable: no connection to the registry could be made.
	ErrUnreachable = errors.New("registry unreachable")
	// ErrDigestMismatch: a blob's content does not match the digest that names it.
	ErrDigestMismatch = errors.New("digest mismatch")
)

// PullPolicy says when Pull asks the registry again for an image it already has.
type PullPolicy int

const (
	// PullIfMissing uses the image a reference resolved to before, if its layers are still
	// cached, without contacting the registry (Mesos Image.cached, the default).
	PullIfMissing PullPolicy = iota
	// PullAlways resolves the reference at the registry every time; layers already cached
	// are still not downloaded again (Image.cached=false, DockerInfo.force_pull_image).
	PullAlways
)

// ImageConfig is the part of an image's config a containerizer honours.
type ImageConfig struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	// Env is "NAME=value" pairs.
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	// User is "user", "uid", "user:group" or "uid:gid", resolved inside the image.
	User string `json:"user,omitempty"`
}

// Image is what a reference resolved to.
type Image struct {
	// Name is the normalized reference (see Normalize).
	Name string `json:"name"`
	// Digest is the manifest's digest ("sha256:…"): the exact image, whatever the tag.
	Digest string `json:"digest"`
	// Layers are the layer digests, bottom layer first.
	Layers []string    `json:"layers"`
	Config ImageConfig `json:"config"`
	// Size is the compressed size of the layers, as the registry sent them.
	Size int64 `json:"size"`
	// Pulled is when the reference was last resolved at the registry.
	Pulled time.Time `json:"pulled"`
}

// Config configures a Store.
type Config struct {
	// Dir holds the layer cache, the image records and the containers' overlay directories.
	// Absolute, on one filesystem that overlayfs accepts as upper layer; it must not contain
	// ',' or ':' (overlay mount option syntax).
	Dir string
	// InsecureRegistries are registries ("host" or "host:port") reached over plain HTTP.
	// Loopback registries (localhost, 127.0.0.0/8, ::1) may always be; any other plain-HTTP
	// request is refused.
	InsecureRegistries []string
	// Platform picks the image out of a multi-platform index: "os/arch" or
	// "os/arch/variant".
	Platform string
	// MaxConcurrentDownloads bounds the layers of one pull downloaded at once.
	MaxConcurrentDownloads int
	// Keychain finds registry credentials; nil pulls anonymously.
	Keychain authn.Keychain
	// Progress, if set, is called after each layer of a pull is in the cache, with the
	// compressed bytes of the image's layers done so far and in all. It must not block.
	Progress func(image string, done, total int64)
}

// DefaultConfig keeps its state in dir and pulls the image for this machine's architecture,
// three layers at a time (Docker's default: enough to fill a link without hammering the
// registry), with the credentials of Docker's config file (so `docker login` on an agent
// just works).
func DefaultConfig(dir string) Config {
	return Config{
		Dir:                    dir,
		Platform:               "linux/" + runtime.GOARCH,
		MaxConcurrentDownloads: 3,
		Keychain:               authn.DefaultKeychain,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Dir == "" || !filepath.IsAbs(c.Dir):
		return fmt.Errorf("image store Dir %q must be an absolute path", c.Dir)
	case strings.ContainsAny(c.Dir, ",:"):
		return fmt.Errorf("image store Dir %q must not contain ',' or ':' (overlay mount options)", c.Dir)
	case c.MaxConcurrentDownloads < 1:
		return fmt.Errorf("image store MaxConcurrentDownloads %d must be at least 1", c.MaxConcurrentDownloads)
	}
	if _, err := v1.ParsePlatform(c.Platform); err != nil || c.Platform == "" {
		return fmt.Errorf("image store Platform %q must be os/arch[/variant]", c.Platform)
	}
	for _, r := range c.InsecureRegistries {
		if r == "" || strings.ContainsAny(r, "/ ") {
			return fmt.Errorf("image store InsecureRegistries entry %q must be host or host:port", r)
		}
	}
	return nil
}

// Stats counts what a Store did since it was made.
type Stats struct {
	// LayersUnpacked counts layers downloaded and unpacked into the cache.
	LayersUnpacked int64
	// LayerCacheHits counts layers a pull found already unpacked.
	LayerCacheHits int64
	// BytesDownloaded sums the compressed size of the layers unpacked.
	BytesDownloaded int64
}

// Store pulls images into its directory and mounts container root filesystems. Its methods
// are safe for concurrent use; one Store owns its directory (New takes a lock on it).
type Store struct {
	cfg       Config
	log       *slog.Logger
	platform  v1.Platform
	transport http.RoundTripper
	lockFile  *os.File

	layerLocks keyedMutex

	unpacked   atomic.Int64
	cacheHits  atomic.Int64
	downloaded atomic.Int64
}

// New opens the store in cfg.Dir, creating it if needed and clearing unpacks a previous
// process left unfinished. It fails if another Store holds the directory. A nil logger
// discards the store's logs.
func New(cfg Config, logger *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	platform, err := v1.ParsePlatform(cfg.Platform)
	if err != nil {
		return nil, fmt.Errorf("image store Platform: %w", err)
	}
	for _, sub := range []string{"layers", "images", "containers", "tmp"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	// The lower directory of images without layers (see lowerDirs).
	if err := mkdirs(0o755, filepath.Join(cfg.Dir, "layers", emptyLayer)); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("image store %s is in use by another store: %w", cfg.Dir, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{cfg: cfg, log: logger, platform: *platform, lockFile: lock}
	s.transport = &plainHTTPGuard{next: remote.DefaultTransport, allowed: s.plainHTTPAllowed}
	if err := removeContents(s.tmpDir()); err != nil {
		lock.Close()
		return nil, fmt.Errorf("image store: clear unfinished unpacks: %w", err)
	}
	return s, nil
}

// Close releases the store's directory. Mounted root filesystems stay mounted.
func (s *Store) Close() error {
	return s.lockFile.Close()
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		LayersUnpacked:  s.unpacked.Load(),
		LayerCacheHits:  s.cacheHits.Load(),
		BytesDownloaded: s.downloaded.Load(),
	}
}

func (s *Store) tmpDir() string { return filepath.Join(s.cfg.Dir, "tmp") }

func (s *Store) layerDir(hex string) string { return filepath.Join(s.cfg.Dir, "layers", hex) }

func (s *Store) containerDir(id string) string { return filepath.Join(s.cfg.Dir, "containers", id) }

func (s *Store) recordPath(imageName string) string {
	sum := sha256.Sum256([]byte(imageName))
	return filepath.Join(s.cfg.Dir, "images", hex.EncodeToString(sum[:])+".json")
}

// Pull makes sure ref's layers are unpacked in the cache and returns what ref resolved to.
// Concurrent pulls of images sharing layers download and unpack each layer once.
func (s *Store) Pull(ctx context.Context, ref string, policy PullPolicy) (Image, error) {
	r, err := parseRef(ref, s.insecureRegistry)
	if err != nil {
		return Image{}, err
	}
	display := displayName(r)
	if policy == PullIfMissing {
		if img, ok := s.cachedImage(display); ok {
			return img, nil
		}
	}
	img, err := s.pull(ctx, r, display)
	if err != nil {
		return Image{}, classify(display, r.Context().RegistryStr(), err)
	}
	return img, nil
}

// cachedImage returns the image display resolved to before, if all its layers are here.
func (s *Store) cachedImage(display string) (Image, bool) {
	data, err := os.ReadFile(s.recordPath(display))
	if err != nil {
		return Image{}, false
	}
	var img Image
	if err := json.Unmarshal(data, &img); err != nil || img.Name != display {
		return Image{}, false
	}
	for _, d := range img.Layers {
		h, err := layerHash(d)
		if err != nil {
			return Image{}, false
		}
		if _, err := os.Lstat(s.layerDir(h)); err != nil {
			return Image{}, false
		}
	}
	return img, true
}

func (s *Store) pull(ctx context.Context, r name.Reference, display string) (Image, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	keychain := s.cfg.Keychain
	if keychain == nil {
		keychain = authn.NewMultiKeychain()
	}
	remoteImage, err := remote.Image(r,
		remote.WithContext(ctx),
		remote.WithTransport(s.transport),
		remote.WithAuthFromKeychain(keychain),
		remote.WithPlatform(s.platform),
	)
	if err != nil {
		return Image{}, err
	}
	digest, err := remoteImage.Digest()
	if err != nil {
		return Image{}, fmt.Errorf("manifest: %w", err)
	}
	manifest, err := remoteImage.Manifest()
	if err != nil {
		return Image{}, fmt.Errorf("manifest: %w", err)
	}
	configFile, err := remoteImage.ConfigFile()
	if err != nil {
		return Image{}, fmt.Errorf("config %s: %w", manifest.Config.Digest, err)
	}
	layers, err := remoteImage.Layers()
	if err != nil {
		return Image{}, fmt.Errorf("layers: %w", err)
	}
	diffIDs := configFile.RootFS.DiffIDs
	if len(diffIDs) != len(layers) || len(manifest.Layers) != len(layers) {
		return Image{}, fmt.Errorf("manifest lists %d layers but the config %d", len(manifest.Layers), len(diffIDs))
	}
	img := Image{Name: display, Digest: digest.String(), Pulled: time.Now().UTC()}
	var jobs []layerJob
	seen := map[v1.Hash]bool{}
	for i, desc := range manifest.Layers {
		if _, err := layerHash(desc.Digest.String()); err != nil {
			return Image{}, err
		}
		img.Layers = append(img.Layers, desc.Digest.String())
		img.Size += desc.Size
		if seen[desc.Digest] {
			continue
		}
		seen[desc.Digest] = true
		jobs = append(jobs, layerJob{layer: layers[i], digest: desc.Digest, diffID: diffIDs[i], size: desc.Size})
	}
	if err := s.fetchLayers(ctx, cancel, display, jobs, img.Size); err != nil {
		return Image{}, err
	}
	img.Config = ImageConfig{
		Entrypoint: configFile.Config.Entrypoint,
		Cmd:        configFile.Config.Cmd,
		Env:        configFile.Config.Env,
		WorkingDir: configFile.Config.WorkingDir,
		User:       configFile.Config.User,
	}
	if err := s.writeRecord(img); err != nil {
		return Image{}, err
	}
	return img, nil
}

// fetchLayers brings every job's layer into the cache, MaxConcurrentDownloads at a time;
// the first failure cancels the rest and is the one returned.
func (s *Store) fetchLayers(ctx context.Context, cancel context.CancelFunc, display string, jobs []layerJob, total int64) error {
	slots := make(chan struct{}, s.cfg.MaxConcurrentDownloads)
	errs := make([]error, len(jobs))
	var done atomic.Int64
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Go(func() {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-slots }()
			if err := s.ensureLayer(ctx, display, job); err != nil {
				errs[i] = err
				cancel()
				return
			}
			if s.cfg.Progress != nil {
				s.cfg.Progress(display, done.Add(job.size), total)
			}
		})
	}
	wg.Wait()
	// The first error that is not a cancellation caused by another layer's failure.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) writeRecord(img Image) error {
	data, err := json.Marshal(img)
	if err != nil {
		return fmt.Errorf("image record: %w", err)
	}
	path := s.recordPath(img.Name)
	// A temporary file of its own: concurrent pulls of one image each write the record.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".record-*")
	if err != nil {
		return fmt.Errorf("image record: %w", err)
	}
	_, err = tmp.Write(data)
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("image record: %w", err)
	}
	return nil
}

// RootFS gives container containerID a fresh copy-on-write root filesystem of image ref,
// pulling the image first as policy says. The caller runs the container in rootfs with
// config's entrypoint, command, environment, working directory and user unless the task
// overrides them, and calls cleanup (or Release with the same id) once the container is
// gone: it unmounts rootfs and deletes everything the container wrote. containerID must be
// a single path element of letters, digits, '.', '_' and '-', unique among live containers.
func (s *Store) RootFS(ctx context.Context, ref, containerID string, policy PullPolicy) (rootfs string, config ImageConfig, cleanup func() error, err error) {
	if err := checkContainerID(containerID); err != nil {
		return "", ImageConfig{}, nil, err
	}
	img, err := s.Pull(ctx, ref, policy)
	if err != nil {
		return "", ImageConfig{}, nil, err
	}
	dir := s.containerDir(containerID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", ImageConfig{}, nil, fmt.Errorf("container %s already has a root filesystem: %w", containerID, err)
		}
		return "", ImageConfig{}, nil, fmt.Errorf("container %s: %w", containerID, err)
	}
	rootfs = filepath.Join(dir, "rootfs")
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	err = mkdirs(0o755, upper, work, rootfs)
	if err == nil {
		err = mountOverlay(rootfs, s.lowerDirs(img.Layers), upper, work)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", ImageConfig{}, nil, fmt.Errorf("container %s root filesystem from %s: %w", containerID, img.Name, err)
	}
	return rootfs, img.Config, func() error { return s.Release(containerID) }, nil
}

// lowerDirs lists an image's layer directories top layer first, as overlayfs wants them.
// A layer that occurs twice is kept only at its upper position, which yields the same
// tree: everything it holds shows from there anyway.
func (s *Store) lowerDirs(layers []string) []string {
	var dirs []string
	seen := map[string]bool{}
	for _, d := range slices.Backward(layers) {
		h, _ := layerHash(d) // checked when the image was pulled
		if seen[h] {
			continue
		}
		seen[h] = true
		dirs = append(dirs, s.layerDir(h))
	}
	if len(dirs) == 0 {
		// An image without layers still needs one lower directory; an empty one will do.
		dirs = append(dirs, s.layerDir(emptyLayer))
	}
	return dirs
}

// emptyLayer names the directory standing in for the layers of a layerless image: the
// digest of an empty tar, so it can never hold anything else.
const emptyLayer = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

// Release unmounts container id's root filesystem and deletes its writable layer. It is
// idempotent, and the way to clean up after a restart, when the cleanup function RootFS
// returned is gone (see Containers).
func (s *Store) Release(id string) error {
	if err := checkContainerID(id); err != nil {
		return err
	}
	dir := s.containerDir(id)
	rootfs := filepath.Join(dir, "rootfs")
	if err := unmountAll(rootfs); err != nil {
		return fmt.Errorf("release container %s: %w", id, err)
	}
	// rootfs is removed with rmdir, never recursively: should anything still be mounted
	// there, this fails instead of deleting through the mount.
	for _, sub := range []string{"upper", "work"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return fmt.Errorf("release container %s: %w", id, err)
		}
	}
	for _, p := range []string{rootfs, dir} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("release container %s: %w", id, err)
		}
	}
	return nil
}

// Containers lists the containers that have a root filesystem here, so that an agent
// coming back from a restart can Release those whose tasks are gone.
func (s *Store) Containers() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.cfg.Dir, "containers"))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	return ids, nil
}

func checkContainerID(id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 128 {
		return fmt.Errorf("container id %q is not a valid directory name", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("container id %q may only hold letters, digits, '.', '_' and '-'", id)
		}
	}
	return nil
}

// layerHash returns the hex of a "sha256:<64 hex>" layer digest, the only form used as a
// directory name.
func layerHash(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("layer digest %q is not sha256:<64 lowercase hex digits>", digest)
	}
	return h, nil
}

// mkdirs makes each directory, if missing, with exactly perm.
func mkdirs(perm fs.FileMode, dirs ...string) error {
	for _, d := range dirs {
		if err := os.Mkdir(d, perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		// Mkdir's permissions pass through the umask; these must be exact.
		if err := os.Chmod(d, perm); err != nil {
			return err
		}
	}
	return nil
}

func removeContents(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// insecureRegistry reports whether registry is to be reached over plain HTTP by config.
func (s *Store) insecureRegistry(registry string) bool {
	return slices.Contains(s.cfg.InsecureRegistries, registry)
}

// plainHTTPAllowed reports whether host ("host" or "host:port") may be sent plain HTTP.
func (s *Store) plainHTTPAllowed(host string) bool {
	if s.insecureRegistry(host) {
		return true
	}
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
		if s.insecureRegistry(h) {
			return true
		}
	}
	if hostname == "localhost" || strings.HasSuffix(hostname, ".localhost") {
		return true
	}
	ip := net.ParseIP(hostname)
	return ip != nil && ip.IsLoopback()
}

// plainHTTPGuard refuses plain-HTTP requests to hosts not allowed them: go-containerregistry
// falls back to HTTP for private addresses on its own, which Atoll does not want.
type plainHTTPGuard struct {
	next    http.RoundTripper
	allowed func(host string) bool
}

func (g *plainHTTPGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.allowed(req.URL.Host) {
		return nil, fmt.Errorf("plain HTTP to %s refused: only loopback registries and configured insecure registries may be reached without TLS", req.URL.Host)
	}
	return g.next.RoundTrip(req)
}

// classify wraps a pull error with the image's name and the sentinel it stands for.
func classify(display, registry string, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode:
				return fmt.Errorf("pull %s: %w in registry %s: %w", display, ErrNotFound, registry, err)
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return fmt.Errorf("pull %s: access denied by registry %s (the repository may not exist or may need credentials): %w", display, registry, err)
			}
		}
		if terr.StatusCode == http.StatusNotFound {
			return fmt.Errorf("pull %s: %w in registry %s: %w", display, ErrNotFound, registry, err)
		}
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) && opErr.Op == "dial" || errors.As(err, &dnsErr) {
		return fmt.Errorf("pull %s: %w: %s: %w", display, ErrUnreachable, registry, err)
	}
	return fmt.Errorf("pull %s: %w", display, err)
}

// Spec is the image a task asks for: the arguments of RootFS.
type Spec struct {
	// Ref is the image reference as the task gave it (see Normalize).
	Ref string
	// Policy comes from Image.cached or DockerInfo.force_pull_image.
	Policy PullPolicy
}

// SpecFor returns the image a ContainerInfo asks for: ok is false when it names none and
// the task runs in the host's filesystem. Image types other than DOCKER are refused.
func SpecFor(ci *api.ContainerInfo) (spec Spec, ok bool, err error) {
	if ci == nil {
		return Spec{}, false, nil
	}
	switch ci.Type {
	case "DOCKER":
		if ci.Docker == nil || ci.Docker.Image == "" {
			return Spec{}, false, fmt.Errorf("container.docker.image is required for a DOCKER container")
		}
		policy := PullIfMissing
		if ci.Docker.ForcePullImage {
			policy = PullAlways
		}
		return Spec{Ref: ci.Docker.Image, Policy: policy}, true, nil
	case "MESOS", "":
		if ci.Mesos == nil || ci.Mesos.Image == nil {
			return Spec{}, false, nil
		}
		image := ci.Mesos.Image
		if image.Type != "DOCKER" {
			return Spec{}, false, fmt.Errorf("container.mesos.image.type %q is not supported (only DOCKER)", image.Type)
		}
		if image.Docker == nil || image.Docker.Name == "" {
			return Spec{}, false, fmt.Errorf("container.mesos.image.docker.name is required for a DOCKER image")
		}
		policy := PullIfMissing
		if image.Cached != nil && !*image.Cached {
			policy = PullAlways
		}
		return Spec{Ref: image.Docker.Name, Policy: policy}, true, nil
	default:
		return Spec{}, false, fmt.Errorf("container.type %q is not supported (MESOS or DOCKER)", ci.Type)
	}
}
