package agent

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// maxReadLength caps one /files/read answer at 16 pages, as Mesos does.
const maxReadLength = 16 * 4096

// handler serves the agent's HTTP API.
func (a *Agent) handler() http.Handler {
	files := sandboxFiles{root: a.sandboxes}
	// An agent with a token for the masters is in a secure cluster, whose sandboxes only
	// the tokens allowed to read their tasks may read.
	if a.cfg.MasterToken != "" {
		asCaller := &http.Client{Transport: a.transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		files.auth = newSandboxAuth(a.sandboxes, a.mastersToAsk, asCaller, a.client)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /files/read", files.read)
	mux.HandleFunc("GET /files/read.json", files.read)
	mux.HandleFunc("GET /files/browse", files.browse)
	mux.HandleFunc("GET /files/browse.json", files.browse)
	return mux
}

// sandboxFiles serves the Mesos /files API over the files under root (the sandboxes);
// paths are absolute host paths, as Mesos agents report sandbox directories.
type sandboxFiles struct {
	root string
	// auth, when set, says which requests may read which sandbox; nil serves all.
	auth *sandboxAuth
}

// allow says whether r may read path: as requested, before anything about it is looked
// up, and as resolved, which a symlink may have led into another task's sandbox.
func (f sandboxFiles) allow(r *http.Request, path string) error {
	if f.auth == nil {
		return nil
	}
	return f.auth.allow(r, path)
}

// readResponse is Mesos's /files/read answer.
type readResponse struct {
	Data   string `json:"data"`
	Offset int64  `json:"offset"`
}

// fileEntry is one entry of Mesos's /files/browse answer.
type fileEntry struct {
	Path  string `json:"path"`
	NLink uint64 `json:"nlink"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"`
	Mode  string `json:"mode"`
	UID   string `json:"uid"`
	GID   string `json:"gid"`
}

// httpError is an error answered with its status.
type httpError struct {
	status  int
	message string
}

func (e *httpError) Error() string { return e.message }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{http.StatusInternalServerError, err.Error()}
	}
	if he.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="atoll"`)
	}
	writeJSON(w, he.status, map[string]string{"message": he.message})
}

// resolve checks that the requested path lies inside root, also after following symlinks
// (a task may plant a link to anywhere in its sandbox), and returns the real path.
func (f sandboxFiles) resolve(requested string) (string, error) {
	if requested == "" {
		return "", &httpError{http.StatusBadRequest, "expecting 'path=value' in query"}
	}
	if !filepath.IsAbs(requested) {
		return "", &httpError{http.StatusBadRequest, "path must be absolute: " + requested}
	}
	root := filepath.Clean(f.root)
	if !within(root, filepath.Clean(requested)) {
		return "", &httpError{http.StatusForbidden, "path is outside the sandboxes: " + requested}
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(requested)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return "", &httpError{http.StatusNotFound, "no such file or directory: " + requested}
	}
	if err != nil {
		return "", &httpError{http.StatusForbidden, "cannot resolve path: " + err.Error()}
	}
	if !within(realRoot, real) {
		return "", &httpError{http.StatusForbidden, "path leads outside the sandboxes: " + requested}
	}
	return real, nil
}

// openResolved opens path, which resolve made of requested, and makes sure that it
// opened the file at that very path: a task may swap a directory of its sandbox for a
// symlink after resolve, which would lead the open elsewhere.
func openResolved(path, requested string) (*os.File, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, &httpError{http.StatusNotFound, "cannot open file: " + err.Error()}
	}
	opened, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(file.Fd())))
	if err != nil || opened != path {
		file.Close()
		return nil, &httpError{http.StatusForbidden, "path changed while it was opened: " + requested}
	}
	return file, nil
}

func within(root, p string) bool {
	return p == root || strings.HasPrefix(p, root+string(filepath.Separator))
}

// queryInt parses an optional integer parameter that is -1 or more; -1 when absent.
func queryInt(r *http.Request, name string) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, &httpError{http.StatusBadRequest, "failed to parse " + name + ": " + s}
	}
	if n < -1 {
		return 0, &httpError{http.StatusBadRequest, "negative " + name + " provided: " + s}
	}
	return n, nil
}

// read answers /files/read?path=&offset=&length=. Without an offset (or with -1) it
// returns only the file's size as the offset, which log tailers use to start at the end.
func (f sandboxFiles) read(w http.ResponseWriter, r *http.Request) {
	resp, err := f.readFile(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (f sandboxFiles) readFile(r *http.Request) (readResponse, error) {
	offset, err := queryInt(r, "offset")
	if err != nil {
		return readResponse{}, err
	}
	length, err := queryInt(r, "length")
	if err != nil {
		return readResponse{}, err
	}
	requested := r.URL.Query().Get("path")
	if err := f.allow(r, requested); err != nil {
		return readResponse{}, err
	}
	path, err := f.resolve(requested)
	if err != nil {
		if f.unwrittenOutput(requested, err) {
			return readResponse{}, nil
		}
		return readResponse{}, err
	}
	if err := f.allow(r, path); err != nil {
		return readResponse{}, err
	}
	file, err := openResolved(path, requested)
	if err != nil {
		return readResponse{}, err
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return readResponse{}, err
	}
	if info.IsDir() {
		return readResponse{}, &httpError{http.StatusBadRequest, "cannot read a directory"}
	}
	size := info.Size()
	if offset == -1 || offset >= size {
		return readResponse{Offset: size}, nil
	}
	if length == -1 || length > maxReadLength {
		length = maxReadLength
	}
	buf := make([]byte, length)
	n, err := file.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return readResponse{}, err
	}
	return readResponse{Data: string(buf[:n]), Offset: offset}, nil
}

// unwrittenOutput reports whether requested, which resolve failed with err, is the
// stdout or stderr of a sandbox (root/framework/run) that the task has not written to
// yet: the process containerizer creates them at the first output, and until then they
// read as the empty files they were when created up front.
func (f sandboxFiles) unwrittenOutput(requested string, err error) bool {
	var he *httpError
	if !errors.As(err, &he) || he.status != http.StatusNotFound {
		return false
	}
	if name := filepath.Base(requested); name != "stdout" && name != "stderr" {
		return false
	}
	sandbox, err := f.resolve(filepath.Dir(filepath.Clean(requested)))
	if err != nil {
		return false
	}
	realRoot, err := filepath.EvalSymlinks(f.root)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(realRoot, sandbox)
	if err != nil || len(strings.Split(rel, string(filepath.Separator))) != 2 {
		return false
	}
	info, err := os.Stat(sandbox)
	return err == nil && info.IsDir()
}

// browse answers /files/browse?path= with the entries of a directory.
func (f sandboxFiles) browse(w http.ResponseWriter, r *http.Request) {
	entries, err := f.list(r, r.URL.Query().Get("path"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, entries)
}

func (f sandboxFiles) list(r *http.Request, requested string) ([]fileEntry, error) {
	if err := f.allow(r, requested); err != nil {
		return nil, err
	}
	path, err := f.resolve(requested)
	if err != nil {
		return nil, err
	}
	if err := f.allow(r, path); err != nil {
		return nil, err
	}
	dir, err := openResolved(path, requested)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	info, err := dir.Stat()
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, &httpError{http.StatusBadRequest, "not a directory: " + requested}
	}
	dirEntries, err := dir.ReadDir(-1)
	if err != nil {
		return nil, &httpError{http.StatusForbidden, "cannot list directory: " + err.Error()}
	}
	slices.SortFunc(dirEntries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	names := idNames{}
	entries := make([]fileEntry, 0, len(dirEntries))
	for _, de := range dirEntries {
		info, err := de.Info()
		if err != nil {
			// Removed between listing and stat.
			continue
		}
		entry := fileEntry{
			Path:  filepath.Join(filepath.Clean(requested), de.Name()),
			Size:  info.Size(),
			MTime: info.ModTime().Unix(),
			Mode:  modeString(info.Mode()),
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			entry.NLink = uint64(st.Nlink)
			entry.UID = names.user(st.Uid)
			entry.GID = names.group(st.Gid)
		}
		entries = append(entries, entry)
	}
	return entries, nil
}

// modeString formats a mode as ls does ("drwxr-xr-x"), which is what Mesos reports.
func modeString(m fs.FileMode) string {
	var b strings.Builder
	switch {
	case m.IsDir():
		b.WriteByte('d')
	case m&fs.ModeSymlink != 0:
		b.WriteByte('l')
	case m&fs.ModeNamedPipe != 0:
		b.WriteByte('p')
	case m&fs.ModeSocket != 0:
		b.WriteByte('s')
	case m&fs.ModeCharDevice != 0:
		b.WriteByte('c')
	case m&fs.ModeDevice != 0:
		b.WriteByte('b')
	default:
		b.WriteByte('-')
	}
	const rwx = "rwxrwxrwx"
	perm := m.Perm()
	for i := range 9 {
		if perm&(1<<(8-i)) != 0 {
			b.WriteByte(rwx[i])
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// idNames caches uid and gid lookups for one listing; unknown ids stay numeric.
type idNames map[string]string

func (n idNames) user(uid uint32) string {
	return n.lookup("u", uid, func(id string) (string, error) {
		u, err := user.LookupId(id)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	})
}

func (n idNames) group(gid uint32) string {
	return n.lookup("g", gid, func(id string) (string, error) {
		g, err := user.LookupGroupId(id)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	})
}

func (n idNames) lookup(kind string, id uint32, find func(string) (string, error)) string {
	s := strconv.FormatUint(uint64(id), 10)
	if name, ok := n[kind+s]; ok {
		return name
	}
	name, err := find(s)
	if err != nil {
		name = s
	}
	n[kind+s] = name
	return name
}
