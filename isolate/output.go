package isolate

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultLogMaxSize is LogRotation.MaxSize's default: 10 MiB, the max_stdout_size and
// max_stderr_size of Mesos's logrotate container logger.
const DefaultLogMaxSize = 10 << 20

// DefaultLogKeep is LogRotation.Keep's default: five rotated files, so that with the
// default size a chatty task's stdout takes at most 60 MiB of its sandbox (six files), as
// does its stderr, while a crash leaves a good stretch of history before it.
const DefaultLogKeep = 5

// outputDrainGrace bounds how long a task's output is read after the task has exited,
// waiting for the pipes' other ends to close. They close at once unless a process that
// outlived the task holds them: in a runc container none can (the init's exit kills every
// process of its PID namespace before the shim learns of it), so there the bound only
// guards against a process outside the container that the task handed its stdout to; a
// plain-process task's processes die with its process group, except one that moved to a
// group or session of its own, such as a daemon it started. Output such a process
// writes after the grace is lost, and its next write fails (EPIPE, or SIGPIPE kills it):
// the task is over, and its exit is not held up for it.
const outputDrainGrace = time.Second

// outputBufferSize is what one read from a task's pipe takes at most: a pipe's default
// capacity, so that one read empties a full pipe.
const outputBufferSize = 64 << 10

// outputSweepReads bounds the reads that collect what a pipe holds when the drain's grace
// is over: enough to empty a pipe as large as Linux allows by default (pipe-max-size,
// 1 MiB), while a process that keeps writing cannot hold the pump.
const outputSweepReads = (1 << 20) / outputBufferSize

// outputBuffers are the pumps' read buffers, taken only while a read has data: idle tasks
// hold none.
var outputBuffers = sync.Pool{New: func() any {
	buf := make([]byte, outputBufferSize)
	return &buf
}}

// LogRotation says when a task's stdout and stderr files in its sandbox rotate, as with
// Mesos's logrotate container logger: when a write would take a file over MaxSize bytes,
// the file becomes stdout.1 (or stderr.1), the earlier stdout.1 becomes stdout.2 and so
// on up to stdout.Keep, the oldest is removed, and the output goes on in a fresh stdout.
// Whatever one read from the task's pipe returns (up to 64 KiB) goes to one file, whole
// and in order, so the files concatenated from stdout.Keep to stdout are exactly the tail
// of the task's output. A single write larger than MaxSize goes whole to a fresh file.
type LogRotation struct {
	// MaxSize is the size in bytes a file may grow to; zero means DefaultLogMaxSize.
	MaxSize int64
	// Keep is how many rotated files stay besides the current one; zero means
	// DefaultLogKeep.
	Keep int
}

// validate reports settings that cannot be.
func (l LogRotation) validate() error {
	switch {
	case l.MaxSize < 0:
		return fmt.Errorf("max size must not be negative, got %d", l.MaxSize)
	case l.Keep < 0:
		return fmt.Errorf("keep must not be negative, got %d", l.Keep)
	}
	return nil
}

// withDefaults fills in the defaults for the zero settings.
func (l LogRotation) withDefaults() LogRotation {
	if l.MaxSize == 0 {
		l.MaxSize = DefaultLogMaxSize
	}
	if l.Keep == 0 {
		l.Keep = DefaultLogKeep
	}
	return l
}

// rotatingFile appends to one of a task's output files, rotating it as LogRotation says.
// It is used by one goroutine at a time.
type rotatingFile struct {
	path    string
	maxSize int64
	keep    int
	// fd is the file's descriptor: a bare one, which costs fewer system calls to set up
	// than an os.File; -1 until the first write opens a lazily opened file.
	fd int
	// size is the file's, once the first write has looked it up (-1 until then): a task
	// that writes nothing costs no lookup.
	size int64
	// rotated counts the rotated files path.1 … path.N there are, once the first rotation
	// has looked for them (-1 until then).
	rotated int
	// uid and gid own the file, and each fresh one; known along with size.
	uid, gid int
}

// openRotatingFile opens path for appending, creating it if need be; rot has its
// defaults filled in.
func openRotatingFile(path string, rot LogRotation) (*rotatingFile, error) {
	fd, err := openAppend(path, unix.O_CREAT)
	if err != nil {
		return nil, err
	}
	return &rotatingFile{path: path, maxSize: rot.MaxSize, keep: rot.Keep, fd: fd, size: -1, rotated: -1}, nil
}

// lazyRotatingFile is openRotatingFile that creates path only at the first write, so
// that a stream without output costs no file; a file that is there already is opened
// now, as openRotatingFile does. Only for a writer that runs as the task's user: the
// task may have put a symlink at path by the first write.
func lazyRotatingFile(path string, rot LogRotation) (*rotatingFile, error) {
	fd, err := openAppend(path, 0)
	if errors.Is(err, fs.ErrNotExist) {
		fd, err = -1, nil
	}
	if err != nil {
		return nil, err
	}
	return &rotatingFile{path: path, maxSize: rot.MaxSize, keep: rot.Keep, fd: fd, size: -1, rotated: -1}, nil
}

// openAppend opens path for appending with extra flags (O_CREAT, O_EXCL).
func openAppend(path string, flags int) (int, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC|flags, 0o644)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// write appends p, whole, rotating the file first if p would take it over the maximum
// size. If the rotation fails, p still goes to the current file, and the rotation is
// tried again at the next write.
func (r *rotatingFile) write(p []byte) error {
	if r.fd < 0 {
		fd, err := openAppend(r.path, unix.O_CREAT)
		if err != nil {
			return err
		}
		r.fd = fd
	}
	var statErr, rotateErr error
	if r.size < 0 {
		statErr = r.stat()
	}
	if r.size > 0 && r.size+int64(len(p)) > r.maxSize {
		rotateErr = r.rotate()
	}
	for len(p) > 0 {
		n, err := unix.Write(r.fd, p)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return errors.Join(statErr, rotateErr, &fs.PathError{Op: "write", Path: r.path, Err: err})
		}
		r.size += int64(n)
		p = p[n:]
	}
	return errors.Join(statErr, rotateErr)
}

// stat looks up the file's size and owner. Should that fail, the file counts as empty
// and its fresh successors stay with the pump's user.
func (r *rotatingFile) stat() error {
	r.size, r.uid, r.gid = 0, os.Geteuid(), os.Getegid()
	var st unix.Stat_t
	if err := unix.Fstat(r.fd, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: r.path, Err: err}
	}
	r.size, r.uid, r.gid = st.Size, int(st.Uid), int(st.Gid)
	return nil
}

// rotatedName names the n-th rotated file.
func (r *rotatingFile) rotatedName(n int) string { return r.path + "." + strconv.Itoa(n) }

// rotate shifts the rotated files up by one, dropping the oldest, renames the current
// file to path.1 and opens a fresh one. The fresh file is created exclusively: the task
// may write to its sandbox, and must not get its output appended to a file of its
// choosing, through a symlink, by whoever pumps it (root, for the runc containerizer).
func (r *rotatingFile) rotate() error {
	if r.rotated < 0 {
		r.rotated = 0
		for r.rotated < r.keep {
			if _, err := os.Lstat(r.rotatedName(r.rotated + 1)); err != nil {
				break
			}
			r.rotated++
		}
	}
	for n := min(r.rotated, r.keep-1); n >= 1; n-- {
		if err := os.Rename(r.rotatedName(n), r.rotatedName(n+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate %s: %w", r.path, err)
		}
	}
	switch err := os.Rename(r.path, r.rotatedName(1)); {
	case err == nil:
		r.rotated = min(r.rotated+1, r.keep)
	case errors.Is(err, fs.ErrNotExist):
		// Someone removed the file; a fresh one takes its place.
	default:
		return fmt.Errorf("rotate %s: %w", r.path, err)
	}
	fd, err := openAppend(r.path, unix.O_CREAT|unix.O_EXCL)
	if err != nil {
		// The output goes on to the file now named path.1.
		return fmt.Errorf("rotate %s: %w", r.path, err)
	}
	unix.Close(r.fd)
	r.fd, r.size = fd, 0
	if r.uid != os.Geteuid() || r.gid != os.Getegid() {
		if err := unix.Fchown(fd, r.uid, r.gid); err != nil {
			return fmt.Errorf("rotate %s: chown: %w", r.path, err)
		}
	}
	return nil
}

func (r *rotatingFile) close() {
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// outputPipe makes a pipe for one of a task's output streams: the read end is pollable,
// for the pump; the write end, the task's, blocks, so that a task that writes faster
// than its output is stored waits rather than fails.
func outputPipe() (r, w *os.File, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, nil, fmt.Errorf("output pipe: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETFL, 0); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("output pipe: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "output"), os.NewFile(uintptr(fds[1]), "task output"), nil
}

// outputPump copies one of a task's output streams from its pipe to its rotatingFile.
type outputPump struct {
	logger *slog.Logger
	pipe   *os.File // the read end
	file   *rotatingFile
	done   chan struct{} // closed once the pump has stopped and closed both
	// failing is set while writes to the file fail, so that only the first failure of
	// a run of them is logged.
	failing bool
}

// run copies until EOF, or until the pipe's read deadline passes: it then copies what
// the pipe holds and stops.
func (p *outputPump) run() {
	defer close(p.done)
	defer p.file.close()
	defer p.pipe.Close()
	raw, err := p.pipe.SyscallConn()
	if err != nil {
		p.logger.Error("read the task's output", "file", p.file.path, "err", err)
		return
	}
	for {
		var buf *[]byte
		var n int
		var readErr error
		err := raw.Read(func(fd uintptr) bool {
			buf, n, readErr = readOutput(fd)
			return !errors.Is(readErr, unix.EAGAIN)
		})
		if p.store(buf, n) {
			continue
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			p.sweep(raw)
		case err != nil:
			p.logger.Error("read the task's output", "file", p.file.path, "err", err)
		case readErr != nil:
			p.logger.Error("read the task's output", "file", p.file.path, "err", readErr)
		}
		return
	}
}

// sweep copies what the pipe holds, without waiting for more.
func (p *outputPump) sweep(raw syscall.RawConn) {
	for range outputSweepReads {
		var buf *[]byte
		var n int
		var readErr error
		if err := raw.Control(func(fd uintptr) { buf, n, readErr = readOutput(fd) }); err != nil {
			return
		}
		if !p.store(buf, n) {
			if readErr != nil && !errors.Is(readErr, unix.EAGAIN) {
				p.logger.Error("read the task's output", "file", p.file.path, "err", readErr)
			}
			return
		}
	}
}

// store writes the n bytes read into buf, if any, and gives buf back; it reports whether
// there were any.
func (p *outputPump) store(buf *[]byte, n int) bool {
	if buf == nil {
		return false
	}
	defer outputBuffers.Put(buf)
	if n <= 0 {
		return false
	}
	err := p.file.write((*buf)[:n])
	if err != nil && !p.failing {
		p.logger.Error("store the task's output; further failures are not logged until a write succeeds",
			"file", p.file.path, "err", err)
	}
	p.failing = err != nil
	return true
}

// readOutput reads from the pipe fd into a pooled buffer. It returns the buffer, which
// the caller gives back, unless the pipe had nothing to read yet (EAGAIN).
func readOutput(fd uintptr) (*[]byte, int, error) {
	buf := outputBuffers.Get().(*[]byte)
	for {
		n, err := unix.Read(int(fd), *buf)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			outputBuffers.Put(buf)
			return nil, 0, err
		}
		return buf, n, err
	}
}

// taskOutput carries a task's stdout and stderr to its sandbox: the task writes to pipes,
// and a pump for each stream copies what it reads to a rotatingFile. The pumps are
// goroutines of whoever started the task (the runc shim, the supervisor), which outlives
// the agent just as the task does.
type taskOutput struct {
	// stdout and stderr are the pipes' write ends, for the task, until start.
	stdout, stderr *os.File
	pumps          [2]*outputPump
}

// newTaskOutput opens the files a task's stdout and stderr go to, rotated as rot says
// (zero settings meaning the defaults), and makes their pipes; the pumps start with
// start. With lazy, a file that is not there yet is created at its stream's first output
// instead: a task that writes nothing to a stream leaves no file for it, and its launch
// creates none, creating a file being the costliest step of a launch on some disks. Lazy
// is only for a task that runs as the pumps' own user (see lazyRotatingFile).
func newTaskOutput(logger *slog.Logger, stdoutPath, stderrPath string, rot LogRotation, lazy bool) (*taskOutput, error) {
	rot = rot.withDefaults()
	o := &taskOutput{}
	for i, path := range []string{stdoutPath, stderrPath} {
		open := openRotatingFile
		if lazy {
			open = lazyRotatingFile
		}
		file, err := open(path, rot)
		if err != nil {
			o.close()
			return nil, err
		}
		r, w, err := outputPipe()
		if err != nil {
			file.close()
			o.close()
			return nil, err
		}
		o.pumps[i] = &outputPump{logger: logger, pipe: r, file: file, done: make(chan struct{})}
		if i == 0 {
			o.stdout = w
		} else {
			o.stderr = w
		}
	}
	return o, nil
}

// start closes the write ends, which the task has inherited, and starts the pumps.
func (o *taskOutput) start() {
	o.stdout.Close()
	o.stderr.Close()
	for _, p := range o.pumps {
		go p.run()
	}
}

// close releases the pipes and files of a task that did not start.
func (o *taskOutput) close() {
	for _, f := range []*os.File{o.stdout, o.stderr} {
		if f != nil {
			f.Close()
		}
	}
	for _, p := range o.pumps {
		if p != nil {
			p.pipe.Close()
			p.file.close()
		}
	}
}

// drain waits, once the task has exited, until the pumps have copied its output to the
// end, but no longer than grace for a pipe that some other process keeps open (see
// outputDrainGrace): the pumps then copy what the pipes hold and stop.
func (o *taskOutput) drain(grace time.Duration) {
	deadline := time.Now().Add(grace)
	for _, p := range o.pumps {
		select {
		case <-p.done:
		default:
			// An error means the pump has just closed the pipe.
			p.pipe.SetReadDeadline(deadline)
		}
	}
	for _, p := range o.pumps {
		<-p.done
	}
}
