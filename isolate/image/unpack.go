package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// OCI whiteouts (image-spec layer.md) and their overlayfs form
// (Documentation/filesystems/overlayfs.rst): a ".wh.NAME" entry becomes a character device
// 0/0 named NAME, and ".wh..wh..opq" marks its directory opaque with an xattr.
const (
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	whiteoutOpaque     = ".wh..wh..opq"
	opaqueXattr        = "trusted.overlay.opaque"
	overlayXattrPrefix = "trusted.overlay."
	paxXattrPrefix     = "SCHILY.xattr."
)

// ErrUnsafeLayer marks a layer entry that would write outside the layer's directory: a
// name with "../" that leaves it, or a path through a symlink.
var ErrUnsafeLayer = errors.New("unsafe layer entry")

// unpacker writes one layer tar into a fresh directory that nothing else writes to, which is
// what makes checking each parent with lstat enough to keep every write inside it.
type unpacker struct {
	root string
	// dirs get their owner, mode and times last: writing into a directory changes its mtime.
	dirs []*tar.Header
	// safeDirs are directories (relative to root) already checked to be real directories;
	// forgotten whenever an entry replaces something.
	safeDirs map[string]bool
	buf      []byte
}

// unpackLayer writes the uncompressed layer tar r into root, an existing empty directory,
// converting whiteouts to overlayfs form. Owners, modes, times, device numbers and xattrs
// are kept, so it needs root.
func unpackLayer(root string, r io.Reader) error {
	u := &unpacker{root: root, safeDirs: map[string]bool{}, buf: make([]byte, 256<<10)}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read layer tar: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return err
		}
	}
	for i := len(u.dirs) - 1; i >= 0; i-- {
		hdr := u.dirs[i]
		rel, _ := cleanEntryName(hdr.Name) // checked when the entry was read
		if err := setMetadata(filepath.Join(root, rel), hdr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	return nil
}

// cleanEntryName turns a tar entry name into a clean path relative to the layer root ("."
// for the root itself). A leading "/" means the layer root, as Docker reads it; a name
// that climbs out with ".." is refused.
func cleanEntryName(name string) (string, error) {
	rel := path.Clean(strings.TrimLeft(name, "/"))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%w: %q leaves the layer directory", ErrUnsafeLayer, name)
	}
	if strings.IndexByte(rel, 0) >= 0 {
		return "", fmt.Errorf("%w: %q contains a NUL byte", ErrUnsafeLayer, name)
	}
	return rel, nil
}

func (u *unpacker) entry(hdr *tar.Header, content io.Reader) error {
	rel, err := cleanEntryName(hdr.Name)
	if err != nil {
		return err
	}
	if first, _, _ := strings.Cut(rel, "/"); strings.HasPrefix(first, whiteoutMetaPrefix) && rel != whiteoutOpaque {
		// Metadata of other storage drivers, such as aufs's hard-link directory .wh..wh.plnk.
		return nil
	}
	if err := u.checkParents(rel, hdr.Name, true); err != nil {
		return err
	}
	base := path.Base(rel)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(rel, hdr.Name)
	}
	target := filepath.Join(u.root, rel)
	if rel == "." && hdr.Typeflag != tar.TypeDir {
		return fmt.Errorf("%w: %q would replace the layer root with a non-directory", ErrUnsafeLayer, hdr.Name)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := u.clear(target, true); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		u.dirs = append(u.dirs, hdr)
		return nil
	case tar.TypeReg, tar.TypeGNUSparse:
		err = u.writeFile(target, content)
	case tar.TypeSymlink:
		if err = u.clear(target, false); err == nil {
			err = os.Symlink(hdr.Linkname, target)
		}
	case tar.TypeLink:
		return u.hardLink(target, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err = u.clear(target, false); err == nil {
			err = unix.Mknod(target, nodeType(hdr.Typeflag), int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
		}
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("entry %q: unsupported tar entry type %q", hdr.Name, hdr.Typeflag)
	}
	if err == nil {
		err = setMetadata(target, hdr)
	}
	if err != nil {
		return fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	return nil
}

func nodeType(typeflag byte) uint32 {
	switch typeflag {
	case tar.TypeChar:
		return unix.S_IFCHR
	case tar.TypeBlock:
		return unix.S_IFBLK
	default:
		return unix.S_IFIFO
	}
}

// whiteout records a deletion: ".wh..wh..opq" makes its directory opaque, ".wh.NAME" hides
// NAME of the layers below; other ".wh..wh." entries are other storage drivers' metadata.
func (u *unpacker) whiteout(rel, name string) error {
	dir, base := path.Split(rel)
	dirPath := filepath.Join(u.root, dir)
	switch {
	case base == whiteoutOpaque:
		if err := unix.Lsetxattr(dirPath, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("entry %q: mark %q opaque: %w", name, dir, err)
		}
		return nil
	case strings.HasPrefix(base, whiteoutMetaPrefix):
		return nil
	}
	hidden := strings.TrimPrefix(base, whiteoutPrefix)
	if hidden == "" || hidden == "." || hidden == ".." {
		return fmt.Errorf("%w: whiteout %q names no file", ErrUnsafeLayer, name)
	}
	target := filepath.Join(dirPath, hidden)
	if err := u.clear(target, false); err != nil {
		return fmt.Errorf("entry %q: %w", name, err)
	}
	if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("entry %q: whiteout: %w", name, err)
	}
	return nil
}

// checkParents makes sure every parent of rel is a real directory inside the root, never a
// symlink (which could lead a write anywhere); missing parents are created when create is
// set, as tars may omit directory entries.
func (u *unpacker) checkParents(rel, name string, create bool) error {
	dir := path.Dir(rel)
	if dir == "." || u.safeDirs[dir] {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		if u.safeDirs[prefix] {
			continue
		}
		fi, err := os.Lstat(filepath.Join(u.root, prefix))
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := os.MkdirAll(filepath.Join(u.root, dir), 0o755); err != nil {
				return fmt.Errorf("entry %q: %w", name, err)
			}
			u.safeDirs[dir] = true
			return nil
		case err != nil:
			return fmt.Errorf("entry %q: %w", name, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %q goes through the symlink %q", ErrUnsafeLayer, name, prefix)
		case !fi.IsDir():
			return fmt.Errorf("entry %q: parent %q is not a directory", name, prefix)
		}
		u.safeDirs[prefix] = true
	}
	return nil
}

// clear removes whatever is at target so an entry can take its place; a directory stays
// when keepDir is set (a later entry for a directory only updates its metadata).
func (u *unpacker) clear(target string, keepDir bool) error {
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if keepDir && fi.IsDir() {
		return nil
	}
	clear(u.safeDirs)
	return os.RemoveAll(target)
}

func (u *unpacker) writeFile(target string, content io.Reader) error {
	if err := u.clear(target, false); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	// Hide f's ReaderFrom so the copy uses buf instead of allocating its own.
	_, err = io.CopyBuffer(struct{ io.Writer }{f}, content, u.buf)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return err
}

// hardLink links target to an earlier entry of the same layer.
func (u *unpacker) hardLink(target string, hdr *tar.Header) error {
	rel, err := cleanEntryName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("entry %q: hard link: %w", hdr.Name, err)
	}
	err = u.checkParents(rel, hdr.Linkname, false)
	var fi fs.FileInfo
	source := filepath.Join(u.root, rel)
	if err == nil {
		fi, err = os.Lstat(source)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("entry %q: hard link target %q is not in this layer", hdr.Name, hdr.Linkname)
	}
	if err != nil {
		return fmt.Errorf("entry %q: hard link target: %w", hdr.Name, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("entry %q: hard link target %q is a directory", hdr.Name, hdr.Linkname)
	}
	if source == target {
		return nil
	}
	if err := u.clear(target, false); err != nil {
		return fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	if err := os.Link(source, target); err != nil {
		return fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	return nil
}

// setMetadata gives target the owner, mode, xattrs and times of hdr without following a
// symlink at target. Xattrs in the overlay namespace are the unpacker's alone to set.
func setMetadata(target string, hdr *tar.Header) error {
	if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	// After chown, which clears set-id bits.
	if hdr.Typeflag != tar.TypeSymlink {
		if err := unix.Chmod(target, uint32(hdr.Mode&0o7777)); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for key, value := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(key, paxXattrPrefix)
		if !ok || strings.HasPrefix(attr, overlayXattrPrefix) {
			continue
		}
		if err := unix.Lsetxattr(target, attr, []byte(value), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("xattr %s: %w", attr, err)
		}
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	times := []unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Sec: 0}
	}
	return unix.NsecToTimespec(t.UnixNano())
}
