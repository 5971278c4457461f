// Package install serves what a machine needs to become a node from any master: the
// installer script (install.sh, written for the master that serves it), the uninstaller,
// and the master's own atoll executable with its SHA-256 and platform. None of it needs
// a credential: a machine has none before it is installed.
package install

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
)

// The paths Register serves (GET and HEAD).
const (
	// ScriptPath is the installer: `curl -fsSL http://MASTER:5050/install.sh | sudo sh -s -- agent`.
	ScriptPath = "/install.sh"
	// UninstallPath is the uninstaller the installer puts next to atoll.
	UninstallPath = "/atoll-uninstall.sh"
	// BinaryPath is the master's atoll executable.
	BinaryPath = "/download/atoll"
	// ChecksumPath is the executable's SHA-256 in hex, as sha256sum prints it.
	ChecksumPath = "/download/atoll.sha256"
	// PlatformPath is the executable's GOOS/GOARCH ("linux/amd64"), so that the installer
	// refuses a machine it cannot run on before downloading it.
	PlatformPath = "/download/atoll.arch"
)

// Paths lists every path Register serves, for whoever decides which paths need no
// credential.
var Paths = []string{ScriptPath, UninstallPath, BinaryPath, ChecksumPath, PlatformPath}

var (
	//go:embed install.sh
	installScript string
	//go:embed uninstall.sh
	uninstallScript string
	//go:embed lib.sh
	libScript string
)

// Config configures the handler.
type Config struct {
	// Join is the gossip address (host:port) that nodes installed by the script join
	// unless given --join: this master's. Empty means the host the script was fetched
	// from, on atoll's default gossip port.
	Join string
	// Executable is the file served as the atoll binary. Empty means the running
	// executable, read through /proc/self/exe where there is one, so that a master whose
	// binary was replaced on disk (by an upgrade) still serves the one it runs.
	Executable string
	// GOOS and GOARCH are the platform Executable runs on; empty means this process's.
	GOOS, GOARCH string
	// Logger receives failures to read the executable; nil discards them.
	Logger *slog.Logger
}

// Handler serves the paths in Paths. It is safe for concurrent use.
type Handler struct {
	cfg       Config
	log       *slog.Logger
	mux       *http.ServeMux
	uninstall string

	mu sync.Mutex
	// checksum is the executable's SHA-256 in hex once computed.
	checksum string
}

// NewHandler returns a handler for cfg.
func NewHandler(cfg Config) *Handler {
	if cfg.Executable == "" {
		cfg.Executable = runningExecutable()
	}
	if cfg.GOOS == "" {
		cfg.GOOS = runtime.GOOS
	}
	if cfg.GOARCH == "" {
		cfg.GOARCH = runtime.GOARCH
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, log: log.With("component", "install"), mux: http.NewServeMux(),
		uninstall: withLib(uninstallScript)}
	h.mux.HandleFunc("GET "+ScriptPath, h.serveScript)
	h.mux.HandleFunc("GET "+UninstallPath, func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, shellType, h.uninstall)
	})
	h.mux.HandleFunc("GET "+BinaryPath, h.serveBinary)
	h.mux.HandleFunc("GET "+ChecksumPath, h.serveChecksum)
	h.mux.HandleFunc("GET "+PlatformPath, func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, "text/plain; charset=utf-8", cfg.GOOS+"/"+cfg.GOARCH+"\n")
	})
	return h
}

// Mux is where Register adds the routes: an *http.ServeMux, or the master (its Handle).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Register serves Paths on mux with a handler for cfg.
func Register(mux Mux, cfg Config) {
	h := NewHandler(cfg)
	for _, p := range Paths {
		mux.Handle("GET "+p, h)
	}
}

// ServeHTTP serves the installer's paths.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

const shellType = "text/x-shellscript; charset=utf-8"

// selfExe is the running executable on Linux, readable even after the file it was started
// from has been replaced or removed.
const selfExe = "/proc/self/exe"

// runningExecutable is Config.Executable's default.
func runningExecutable() string {
	if _, err := os.Stat(selfExe); err != nil {
		if exe, err := os.Executable(); err == nil {
			return exe
		}
	}
	return selfExe
}

// withLib splices lib.sh into a script where it says so.
func withLib(script string) string {
	return strings.Replace(script, "# @lib.sh\n", libScript, 1)
}

// safeHost is what the script may carry as a host: a DNS name or IPv4 address, or a
// bracketed IPv6 address, with an optional port. Nothing a shell would interpret.
var safeHost = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$`)

// serveScript serves install.sh with this master baked in: the URL the client fetched it
// from, where the script downloads atoll and checks the join, and the gossip address
// nodes join.
func (h *Handler) serveScript(w http.ResponseWriter, r *http.Request) {
	if !safeHost.MatchString(r.Host) {
		http.Error(w, fmt.Sprintf("install.sh: the Host header %q is not a host[:port] the script can carry", r.Host), http.StatusBadRequest)
		return
	}
	join := h.cfg.Join
	if join == "" {
		join = hostOnly(r.Host)
	}
	if !safeHost.MatchString(join) {
		h.log.Error("install.sh: the configured join address is not host:port", "join", join)
		http.Error(w, fmt.Sprintf("install.sh: this master's join address %q is not host:port", join), http.StatusInternalServerError)
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	script := strings.NewReplacer(
		"@ATOLL_SERVED_URL@", scheme+"://"+r.Host,
		"@ATOLL_SERVED_JOIN@", join,
	).Replace(withLib(installScript))
	writeText(w, shellType, script)
}

// hostOnly strips the port from a Host header that safeHost accepts.
func hostOnly(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		return host[:i]
	}
	return host
}

func writeText(w http.ResponseWriter, contentType, body string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, body)
}

// serveBinary streams the executable, with its length (and ranges, for resumed downloads).
func (h *Handler) serveBinary(w http.ResponseWriter, r *http.Request) {
	f, err := os.Open(h.cfg.Executable)
	if err != nil {
		h.fail(w, err)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="atoll"`)
	http.ServeContent(w, r, "", info.ModTime(), f)
}

// serveChecksum serves the executable's SHA-256, computed on the first request.
func (h *Handler) serveChecksum(w http.ResponseWriter, _ *http.Request) {
	sum, err := h.sum()
	if err != nil {
		h.fail(w, err)
		return
	}
	writeText(w, "text/plain; charset=utf-8", sum+"  atoll\n")
}

func (h *Handler) sum() (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.checksum != "" {
		return h.checksum, nil
	}
	f, err := os.Open(h.cfg.Executable)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hash := sha256.New()
	if _, err := io.Copy(hash, f); err != nil {
		return "", fmt.Errorf("read %s: %w", h.cfg.Executable, err)
	}
	h.checksum = hex.EncodeToString(hash.Sum(nil))
	return h.checksum, nil
}

// fail answers 500 for an executable the master cannot read.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	h.log.Error("cannot serve the atoll executable", "err", err)
	http.Error(w, "the master cannot read its atoll executable: "+err.Error(), http.StatusInternalServerError)
}
