package fetch

import (
	"archive/tar"
	"archive/zip"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// archiveKind is how an artifact is unpacked, known from its name as in Mesos.
type archiveKind int

const (
	notArchive archiveKind = iota
	tarPlain
	tarGzip
	tarBzip2
	tarXz
	zipArchive
	// gzipFile is a single gzipped file: it is decompressed beside itself, minus ".gz".
	gzipFile
)

// archiveKindOf tells the archive kind by the file name's extension.
func archiveKindOf(name string) archiveKind {
	n := strings.ToLower(name)
	for _, k := range []struct {
		suffixes []string
		kind     archiveKind
	}{
		{[]string{".tar"}, tarPlain},
		{[]string{".tar.gz", ".tgz"}, tarGzip},
		{[]string{".tar.bz2", ".tbz2"}, tarBzip2},
		{[]string{".tar.xz", ".txz"}, tarXz},
		{[]string{".zip"}, zipArchive},
		{[]string{".gz"}, gzipFile},
	} {
		for _, s := range k.suffixes {
			if strings.HasSuffix(n, s) && len(n) > len(s) {
				return k.kind
			}
		}
	}
	return notArchive
}

// extractArchive unpacks archive (of kind) into root, writing at most limit bytes.
func extractArchive(ctx context.Context, archive string, kind archiveKind, root string, limit int64) error {
	x := &extractor{ctx: ctx, root: root, limit: limit}
	if err := x.extract(archive, kind); err != nil {
		return fmt.Errorf("extract %s: %w", filepath.Base(archive), err)
	}
	return nil
}

// extractor writes archive entries below root and nowhere else: entry names are relative
// and stay inside, no write goes through a symlink (each parent is checked with lstat),
// symlinks may only point inside (checked again once all entries are written, when chains
// of them can be followed), and only files, directories and links are made. Set-id bits
// are dropped and owners are not kept: the sandbox belongs to the task's user.
type extractor struct {
	ctx     context.Context
	root    string
	limit   int64
	written int64
	// symlinks made, relative to root.
	symlinks []string
	buf      []byte
}

func (x *extractor) extract(archive string, kind archiveKind) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	x.buf = make([]byte, 128<<10)
	switch kind {
	case zipArchive:
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		zr, err := zip.NewReader(f, fi.Size())
		if err != nil {
			return fmt.Errorf("zip: %w", err)
		}
		if err := x.zip(zr); err != nil {
			return err
		}
	case gzipFile:
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		return x.file(archive[:len(archive)-len(".gz")], filepath.Base(archive), zr, 0o644)
	default:
		r, err := decompressor(kind, f)
		if err != nil {
			return err
		}
		if err := x.tar(tar.NewReader(r)); err != nil {
			return err
		}
	}
	return x.checkSymlinks()
}

func decompressor(kind archiveKind, r io.Reader) (io.Reader, error) {
	switch kind {
	case tarGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	case tarBzip2:
		return bzip2.NewReader(r), nil
	case tarXz:
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		return zr, nil
	default:
		return r, nil
	}
}

func (x *extractor) tar(tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		if err := x.ctx.Err(); err != nil {
			return err
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = x.dir(hdr.Name, mode)
		case tar.TypeReg, tar.TypeGNUSparse:
			err = x.regular(hdr.Name, tr, mode)
		case tar.TypeSymlink:
			err = x.symlink(hdr.Name, hdr.Linkname)
		case tar.TypeLink:
			err = x.hardLink(hdr.Name, hdr.Linkname)
		case tar.TypeXGlobalHeader:
		default:
			err = fmt.Errorf("entry %q: only files, directories and links may be extracted, not type %q", hdr.Name, hdr.Typeflag)
		}
		if err != nil {
			return err
		}
	}
}

func (x *extractor) zip(zr *zip.Reader) error {
	for _, zf := range zr.File {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		mode := zf.Mode()
		var err error
		switch {
		case mode.IsDir():
			err = x.dir(zf.Name, mode.Perm())
		case mode&fs.ModeSymlink != 0:
			err = x.zipSymlink(zf)
		case mode.IsRegular():
			err = x.zipFile(zf, mode.Perm())
		default:
			err = fmt.Errorf("entry %q: only files, directories and links may be extracted, not %v", zf.Name, mode.Type())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (x *extractor) zipFile(zf *zip.File, mode fs.FileMode) error {
	rc, err := zf.Open()
	if err != nil {
		return fmt.Errorf("entry %q: %w", zf.Name, err)
	}
	defer rc.Close()
	return x.regular(zf.Name, rc, mode)
}

// zipSymlink makes a zip symlink entry, whose content is the link target.
func (x *extractor) zipSymlink(zf *zip.File) error {
	rc, err := zf.Open()
	if err != nil {
		return fmt.Errorf("entry %q: %w", zf.Name, err)
	}
	defer rc.Close()
	target, err := io.ReadAll(io.LimitReader(rc, unix.PathMax+1))
	if err != nil {
		return fmt.Errorf("entry %q: %w", zf.Name, err)
	}
	if len(target) > unix.PathMax {
		return fmt.Errorf("entry %q: symlink target longer than %d bytes", zf.Name, unix.PathMax)
	}
	return x.symlink(zf.Name, string(target))
}

// cleanName turns an entry name (or output_file) into a clean path relative to the
// sandbox ("." for the sandbox itself), refusing absolute names and names that climb out.
func cleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty name")
	case strings.IndexByte(name, 0) >= 0:
		return "", fmt.Errorf("%w: %q contains a NUL byte", ErrUnsafePath, name)
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("%w: %q is an absolute path", ErrUnsafePath, name)
	}
	rel := path.Clean(name)
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%w: %q leaves the sandbox", ErrUnsafePath, name)
	}
	return rel, nil
}

// entryTarget checks an entry's name and parents and returns its path; "." (the sandbox
// itself) is only allowed for directories.
func (x *extractor) entryTarget(name string, isDir bool) (string, error) {
	rel, err := cleanName(name)
	if err != nil {
		return "", err
	}
	if rel == "." && !isDir {
		return "", fmt.Errorf("%w: %q would replace the sandbox", ErrUnsafePath, name)
	}
	if err := makeParents(x.root, rel, name); err != nil {
		return "", err
	}
	return filepath.Join(x.root, rel), nil
}

// makeParents makes sure each parent directory of rel below root is a real directory,
// never a symlink, creating missing ones.
func makeParents(root, rel, name string) error {
	dir := path.Dir(rel)
	if dir == "." {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		fi, err := os.Lstat(filepath.Join(root, prefix))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return os.MkdirAll(filepath.Join(root, dir), 0o755)
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %q goes through the symlink %q", ErrUnsafePath, name, prefix)
		case !fi.IsDir():
			return fmt.Errorf("entry %q: %q is not a directory", name, prefix)
		}
	}
	return nil
}

// clearFor removes a file or link in the way of a new entry; a directory in the way is an
// error.
func clearFor(target, name string) error {
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.IsDir():
		return fmt.Errorf("entry %q: a directory is in the way", name)
	}
	return os.Remove(target)
}

func (x *extractor) dir(name string, mode fs.FileMode) error {
	target, err := x.entryTarget(name, true)
	if err != nil {
		return err
	}
	if target == x.root {
		return nil
	}
	// Owner rwx always: the rest of the archive must be able to go in.
	mode |= 0o700
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(target, mode); err != nil {
			return fmt.Errorf("entry %q: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("entry %q: %w", name, err)
	case !fi.IsDir():
		return fmt.Errorf("entry %q: a file is in the way of the directory", name)
	}
	if err := os.Chmod(target, mode); err != nil {
		return fmt.Errorf("entry %q: %w", name, err)
	}
	return nil
}

func (x *extractor) regular(name string, content io.Reader, mode fs.FileMode) error {
	target, err := x.entryTarget(name, false)
	if err != nil {
		return err
	}
	return x.file(target, name, content, mode)
}

// file writes content to target, counting it against the limit.
func (x *extractor) file(target, name string, content io.Reader, mode fs.FileMode) error {
	if err := clearFor(target, name); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("entry %q: %w", name, err)
	}
	remaining := x.limit - x.written
	// Hide f's ReaderFrom so the copy uses buf instead of allocating its own.
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, io.LimitReader(content, remaining+1), x.buf)
	x.written += n
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err == nil && n > remaining {
		err = fmt.Errorf("%w: the archive unpacks to more than %d bytes", ErrTooLarge, x.limit)
	}
	if err == nil {
		err = os.Chmod(target, mode)
	}
	if err != nil {
		return fmt.Errorf("entry %q: %w", name, err)
	}
	return nil
}

func (x *extractor) symlink(name, linkTarget string) error {
	target, err := x.entryTarget(name, false)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(x.root, target)
	switch {
	case linkTarget == "":
		return fmt.Errorf("entry %q: symlink without a target", name)
	case path.IsAbs(linkTarget):
		return fmt.Errorf("%w: symlink %q points to the absolute path %q", ErrUnsafePath, name, linkTarget)
	}
	if resolved := path.Join(path.Dir(rel), linkTarget); resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("%w: symlink %q points outside the sandbox (%q)", ErrUnsafePath, name, linkTarget)
	}
	if err := clearFor(target, name); err != nil {
		return err
	}
	if err := os.Symlink(linkTarget, target); err != nil {
		return fmt.Errorf("entry %q: %w", name, err)
	}
	x.symlinks = append(x.symlinks, rel)
	return nil
}

func (x *extractor) hardLink(name, linkName string) error {
	target, err := x.entryTarget(name, false)
	if err != nil {
		return err
	}
	rel, err := cleanName(linkName)
	if err != nil {
		return fmt.Errorf("entry %q: hard link: %w", name, err)
	}
	// The link's source must be a regular file reached without symlinks.
	parts := strings.Split(rel, "/")
	for i := range parts {
		fi, err := os.Lstat(filepath.Join(x.root, strings.Join(parts[:i+1], "/")))
		if err != nil {
			return fmt.Errorf("entry %q: hard link target %q: %w", name, linkName, err)
		}
		last := i == len(parts)-1
		if !last && !fi.IsDir() || last && !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: hard link %q must point to a regular file without symlinks, not %q", ErrUnsafePath, name, linkName)
		}
	}
	source := filepath.Join(x.root, rel)
	if source == target {
		return nil
	}
	if err := clearFor(target, name); err != nil {
		return err
	}
	if err := os.Link(source, target); err != nil {
		return fmt.Errorf("entry %q: %w", name, err)
	}
	return nil
}

// maxSymlinkHops is how many symlinks one path may go through, as Linux's MAXSYMLINKS.
const maxSymlinkHops = 40

// checkSymlinks follows each symlink the archive made, through any chain of others, and
// refuses the archive if one leads outside the root: each link's target was checked on its
// own, but "a -> ." with "b -> a/../x" only escapes once both exist.
func (x *extractor) checkSymlinks() error {
	for _, rel := range x.symlinks {
		inside, err := x.resolvesInside(rel)
		if err != nil {
			return fmt.Errorf("symlink %q: %w", rel, err)
		}
		if !inside {
			return fmt.Errorf("%w: symlink %q leads outside the sandbox", ErrUnsafePath, rel)
		}
	}
	return nil
}

// resolvesInside walks rel below root the way the kernel would, following symlinks, and
// reports whether it stays below root. A missing component ends the walk's use of the
// disk; what follows it is taken literally.
func (x *extractor) resolvesInside(rel string) (bool, error) {
	todo := strings.Split(rel, "/")
	var cur []string
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return false, nil
			}
			cur = cur[:len(cur)-1]
			continue
		}
		p := filepath.Join(x.root, filepath.Join(cur...), c)
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = append(cur, c)
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return false, errors.New("too many levels of symlinks")
		}
		target, err := os.Readlink(p)
		if err != nil {
			return false, err
		}
		if path.IsAbs(target) {
			return false, nil
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return true, nil
}
