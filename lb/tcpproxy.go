package lb

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The TCP path: service ports are listened on by an engine of event loops rather than
// by a goroutine per connection. Each loop (one per GOMAXPROCS) polls its own epoll
// instance, edge-triggered, and every service port's listening socket (a connection
// may wake more than one loop; one accepts it). A connection accepted on a TCP service
// port stays on the loop that accepted it: the loop connects to a backend without
// blocking, trying the next one when a backend refuses (and ejecting it), then copies
// both ways through its own buffer, holding only what a peer could not take yet, and
// half-closes as each side finishes. Connections accepted on an HTTP service port are
// handed to the HTTP path.
//
// The loops wait in the runtime's poller (the epoll instance is a pollable file), so an
// idle loop holds no thread and the scheduler's monitor never takes a processor from a
// loop blocked in epoll_wait: measured, that handoff cost more than the runtime's
// wake-up.
//
// Against a goroutine pair and net.Conn per connection, this saves the goroutines, the
// runtime's poller registrations and the socket options net sets on each connection
// (accepted sockets inherit theirs from the listening socket): about half the system
// calls of a short connection, and most of the Go scheduler's work.

// tcpEngine is the TCP path's event loops.
type tcpEngine struct {
	s     *Server
	loops []*loop
	// kernelWaiters counts the loops waiting in epoll_wait(2) itself (see loop.wait),
	// at most maxKernelWaiters: one processor fewer than the runtime has, so one is
	// always left for the other goroutines and the runtime's poller.
	kernelWaiters    atomic.Int32
	maxKernelWaiters int32
	// ctx ends when the engine stops: it bounds backend name lookups.
	ctx    context.Context
	cancel context.CancelFunc
}

// newTCPEngine starts n loops for s (their goroutines are in s.wg).
func newTCPEngine(s *Server, n int) (*tcpEngine, error) {
	e := &tcpEngine{s: s, maxKernelWaiters: int32(runtime.GOMAXPROCS(0) - 1)}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	for range n {
		l, err := newLoop(e)
		if err != nil {
			e.cancel()
			for _, l := range e.loops {
				l.shutdown()
			}
			return nil, err
		}
		e.loops = append(e.loops, l)
	}
	for _, l := range e.loops {
		s.wg.Go(l.run)
	}
	return e, nil
}

// add has every loop accept on ln.
func (e *tcpEngine) add(ln *rawListener) {
	ln.refs.Store(int32(len(e.loops)))
	for _, l := range e.loops {
		l.post(func() { l.addListener(ln) })
	}
}

// remove stops ln listening at once (its port can be bound again when remove returns)
// and has the loops let go of it; the last one closes it. Connections it accepted go on.
func (e *tcpEngine) remove(ln *rawListener) {
	_ = unix.Shutdown(ln.fd, unix.SHUT_RDWR)
	for _, l := range e.loops {
		l.post(func() { l.dropListener(ln) })
	}
}

// stop ends every loop, closing their connections; s.wg waits for them.
func (e *tcpEngine) stop() {
	e.cancel()
	for _, l := range e.loops {
		l.post(func() { l.stopping = true })
	}
}

// Tunables of the loops.
const (
	// loopBufferSize is what one read takes from a socket on the HTTP path, and the
	// most of a response's head it holds.
	loopBufferSize = 64 << 10
	// tcpReadSize is what one read of a TCP session takes: small enough that what is
	// read is still in the processor's nearest cache when it is written on (64 KiB cost
	// 10-25 % more CPU per byte than 32 KiB in scripts/bench/lb.sh, and 16 KiB, with
	// twice the system calls, 5-20 % more).
	tcpReadSize = 32 << 10
	// acceptBatch bounds the connections one wake-up accepts from one listener, so
	// that the other loops and the loop's own connections get their turn.
	acceptBatch = 16
	// transferBudget bounds the reads one direction of a connection gets before the
	// loop turns to its other connections.
	transferBudget = 8
	// acceptPause is how long a listener rests after accept ran out of file
	// descriptors or memory.
	acceptPause = 10 * time.Millisecond
	// kernelWaitMillis is the longest a busy loop waits in epoll_wait(2) itself before
	// it looks again; kernelWaitsIdle such waits in a row with nothing to do make it
	// idle, and an idle loop waits in the runtime's poller.
	kernelWaitMillis = 1
	kernelWaitsIdle  = 2
	// connEvents are what a connection's sockets are polled for.
	connEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
)

// pendingBuffers hold what a peer could not take yet.
var pendingBuffers = sync.Pool{New: func() any { b := make([]byte, loopBufferSize); return &b }}

// Kinds of a loop's file descriptors.
const (
	slotFree = iota
	slotWake
	slotListener
	slotClient
	slotServer
	// slotHTTP is a client's connection on the HTTP path of the loops (httploop.go),
	// slotHTTPServer its connection to a backend, slotIdle a pooled one.
	slotHTTP
	slotHTTPServer
	slotIdle
)

// slot is what a loop knows of one of its file descriptors. gen tells an event for a
// descriptor from one for an earlier one with the same number.
type slot struct {
	gen  uint32
	kind uint8
	ss   *session
	ln   *rawListener
	hc   *hconn
	b    *backend
}

// loop is one event loop: its goroutine alone touches its fields but mu's.
type loop struct {
	e      *tcpEngine
	s      *Server
	epfd   int
	wakefd int
	events []unix.EpollEvent
	slots  []slot // by file descriptor
	gen    uint32
	buf    []byte
	now    int64 // Unix nanoseconds, as of the last wake-up
	// file is the epoll instance as the runtime polls it; rc its raw connection, pollFn
	// the call handed to it (bound once), nready what it found; deadline the timer set
	// on file (Unix nanoseconds, 0 for none).
	file     *os.File
	rc       syscall.RawConn
	pollFn   func(fd uintptr) bool
	nready   int
	deadline int64
	// kernelWaiting is whether the loop holds one of the engine's kernelWaiters; idleWaits
	// counts its kernel waits in a row that found nothing.
	kernelWaiting bool
	idleWaits     int
	// listeners are the listeners the loop holds, with when (Unix nanoseconds) a paused
	// one is polled again (0: polled).
	listeners map[*rawListener]int64
	timers    timerHeap
	// ready are connections (TCP sessions, HTTP connections) that spent their transfer
	// budget with more to do.
	ready []resumable
	// idle are the HTTP path's pooled backend connections; obuf is scratch space for
	// what goes to a client.
	idle     map[*backend][]idleConn
	obuf     []byte
	stopping bool
	// conns counts the client connections the loop serves (TCP sessions and HTTP
	// connections), those adopted but not yet started included: the other loops read it
	// to place the connections they accept.
	conns atomic.Int32

	mu      sync.Mutex // guards cmds, adopted and stopped
	cmds    []func()
	adopted []accepted
	stopped bool
}

func newLoop(e *tcpEngine) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("lb: epoll: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("lb: eventfd: %w", err)
	}
	l := &loop{e: e, s: e.s, epfd: epfd, wakefd: wakefd, events: make([]unix.EpollEvent, 128),
		buf: make([]byte, loopBufferSize), listeners: map[*rawListener]int64{}}
	l.pollFn = l.poll
	err = l.register(wakefd, slot{kind: slotWake}, unix.EPOLLIN)
	if err == nil {
		// The runtime polls a file only when it is non-blocking.
		err = unix.SetNonblock(epfd, true)
	}
	if err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, fmt.Errorf("lb: epoll: %w", err)
	}
	l.file = os.NewFile(uintptr(epfd), "epoll")
	if l.rc, err = l.file.SyscallConn(); err != nil {
		unix.Close(wakefd)
		l.file.Close()
		return nil, fmt.Errorf("lb: epoll: %w", err)
	}
	return l, nil
}

// post runs fn on the loop's goroutine (never, once the loop stopped).
func (l *loop) post(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.cmds = append(l.cmds, fn)
	l.wakeLocked()
}

// adopt has the loop start a connection another loop accepted, at its next wake-up;
// false when the loop stopped.
func (l *loop) adopt(a accepted) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.adopted = append(l.adopted, a)
	l.wakeLocked()
	return true
}

// wakeLocked has the loop's next wait return. The eventfd is non-blocking, so the write
// is a raw system call: one that tells the scheduler would wake the runtime's monitor
// whenever it sleeps because every processor was idle, and the monitor then polls every
// 20 µs for the next millisecond, which costs a short-connection load a few per cent of
// its CPU.
func (l *loop) wakeLocked() {
	one := uint64(1)
	_, _, _ = syscall.RawSyscall(syscall.SYS_WRITE, uintptr(l.wakefd), uintptr(unsafe.Pointer(&one)), 8)
}

// register polls fd for events as sl says.
func (l *loop) register(fd int, sl slot, events uint32) error {
	l.gen++
	sl.gen = l.gen
	if fd >= len(l.slots) {
		l.slots = append(l.slots, make([]slot, fd+1-len(l.slots)+len(l.slots)/2)...)
	}
	l.slots[fd] = sl
	ev := unix.EpollEvent{Events: events, Fd: int32(fd), Pad: int32(sl.gen)}
	_, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(l.epfd), unix.EPOLL_CTL_ADD, uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	if errno != 0 {
		l.slots[fd] = slot{}
		return errno
	}
	return nil
}

// closeFD forgets and closes one of the loop's connection sockets (which takes it off
// the epoll instance).
func (l *loop) closeFD(fd int) {
	l.slots[fd] = slot{}
	rawClose(fd)
}

// closeClient closes a client connection the loop serves and stops counting it.
func (l *loop) closeClient(fd int) {
	l.closeFD(fd)
	l.conns.Add(-1)
}

func rawClose(fd int) {
	_, _, _ = syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
}

func (l *loop) unregister(fd int) {
	l.slots[fd] = slot{}
	_, _, _ = syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(l.epfd), unix.EPOLL_CTL_DEL, uintptr(fd), 0, 0, 0)
}

func (l *loop) addListener(ln *rawListener) {
	l.listeners[ln] = 0
	// Level-triggered: a connection left for the next wake-up (acceptBatch) is reported
	// again. (EPOLLEXCLUSIVE would not keep the other loops from waking: they wait in
	// the runtime's poller, not in epoll_wait.)
	if err := l.register(ln.fd, slot{kind: slotListener, ln: ln}, unix.EPOLLIN); err != nil {
		l.s.log.Error("cannot poll a service port", "port", ln.key, "err", err)
	}
}

// dropListener lets go of ln; the last loop to do so closes it.
func (l *loop) dropListener(ln *rawListener) {
	pausedUntil, ok := l.listeners[ln]
	if !ok {
		return
	}
	delete(l.listeners, ln)
	if pausedUntil == 0 {
		l.unregister(ln.fd)
	}
	if ln.refs.Add(-1) == 0 {
		rawClose(ln.fd)
	}
}

// run is the loop's goroutine.
func (l *loop) run() {
	for !l.stopping {
		n := l.wait()
		l.now = time.Now().UnixNano()
		for _, ev := range l.events[:n] {
			l.handle(ev)
		}
		l.runReady()
		l.expire()
	}
	l.shutdown()
}

// wait polls for events. With connections ready it only looks (no blocking); a busy
// loop then waits in epoll_wait(2) itself for a millisecond at a time (kernelWait),
// without telling the scheduler: told, the runtime's monitor would take the processor
// from the waiting thread and hand it to another one at every wait longer than 20 µs.
// Otherwise it parks the goroutine in the runtime's poller, which polls the epoll
// instance as it does sockets, until an event or the next timer.
func (l *loop) wait() int {
	l.nready = 0
	if len(l.ready) > 0 {
		l.poll(uintptr(l.epfd))
		return l.nready
	}
	if l.idleWaits < kernelWaitsIdle && l.holdKernelWait() {
		if n, ok := l.kernelWait(); ok {
			return n
		}
	}
	if next := l.nextTimer(); next != l.deadline {
		l.deadline = next
		when := time.Time{}
		if next != 0 {
			when = time.Unix(0, next)
		}
		_ = l.file.SetReadDeadline(when)
	}
	if err := l.rc.Read(l.pollFn); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		l.s.log.Error("polling the TCP engine failed", "err", err)
		time.Sleep(acceptPause)
	}
	if l.nready > 0 {
		l.idleWaits = 0
	}
	return l.nready
}

// holdKernelWait has the loop hold one of the engine's kernel waits; false when all are
// held by other loops.
//
// Taking one, the loop yields once. The loop's goroutine was woken, as likely as not, by
// the thread that was waiting in the runtime's poller, and once the loop waits in the
// kernel that thread never comes back to the scheduler to poll for the others: the other
// loops' events (and every other goroutine's) would wait, unseen, until this loop parks
// again (up to seconds under load). A goroutine that yields has the scheduler start
// another thread for an idle processor, and that one waits in the runtime's poller.
func (l *loop) holdKernelWait() bool {
	if l.kernelWaiting {
		return true
	}
	e := l.e
	if e.kernelWaiters.Add(1) > e.maxKernelWaiters {
		e.kernelWaiters.Add(-1)
		return false
	}
	l.kernelWaiting = true
	runtime.Gosched()
	return true
}

// releaseKernelWait gives the loop's kernel wait back.
func (l *loop) releaseKernelWait() {
	if l.kernelWaiting {
		l.kernelWaiting = false
		l.e.kernelWaiters.Add(-1)
	}
}

// kernelWait waits for events in epoll_wait(2) itself, up to kernelWaitMillis, holding
// its processor: the events found, and false when the loop should wait in the runtime's
// poller instead (it has been idle for kernelWaitsIdle waits, or epoll_wait failed).
//
// A busy loop waits this way. Parked in the runtime's poller, each wake-up of a loop
// went through the runtime's epoll instance, a thread woken to poll it and a hand-over
// to the loop's goroutine; under load that cost little CPU but widened the tail of the
// latencies (HTTP keep-alive p99 4.5–9.5 ms against 3.2–4.6 ms waiting here, on the
// loopback benchmark). A loop idle for a while parks again, so an idle proxy wakes for
// nothing, and the processors left to the runtime (see tcpEngine.kernelWaiters) keep
// the other goroutines and the runtime's own polling going.
func (l *loop) kernelWait() (int, bool) {
	timeout := kernelWaitMillis
	if next := l.nextTimer(); next != 0 && next-time.Now().UnixNano() < int64(kernelWaitMillis)*int64(time.Millisecond) {
		timeout = 0
	}
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), uintptr(timeout), 0, 0)
	switch {
	case errno == syscall.EINTR:
		// A signal (the runtime preempting the goroutine, say): look again.
		return 0, true
	case errno != 0:
		l.releaseKernelWait()
		l.s.log.Error("epoll_wait failed", "err", errno)
		return 0, false
	case n > 0:
		l.idleWaits = 0
		l.nready = int(n)
		return l.nready, true
	}
	if l.idleWaits++; l.idleWaits >= kernelWaitsIdle {
		l.releaseKernelWait()
	}
	return 0, true
}

// poll takes the ready events without blocking; false when there were none.
func (l *loop) poll(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno != 0:
			l.s.log.Error("epoll_wait failed", "err", errno)
			return true
		}
		l.nready = int(n)
		return n > 0
	}
}

// nextTimer is when (Unix nanoseconds) the next timer fires, 0 for none.
func (l *loop) nextTimer() int64 {
	var next int64
	if len(l.timers) > 0 {
		next = l.timers[0].timer().at
	}
	for _, until := range l.listeners {
		if until != 0 && (next == 0 || until < next) {
			next = until
		}
	}
	return next
}

func (l *loop) handle(ev unix.EpollEvent) {
	fd := int(ev.Fd)
	if fd >= len(l.slots) {
		return
	}
	sl := l.slots[fd]
	if sl.gen != uint32(ev.Pad) {
		return
	}
	switch sl.kind {
	case slotWake:
		var count uint64
		_, _, _ = syscall.RawSyscall(syscall.SYS_READ, uintptr(l.wakefd), uintptr(unsafe.Pointer(&count)), 8)
		l.mu.Lock()
		cmds, adopted := l.cmds, l.adopted
		l.cmds, l.adopted = nil, nil
		l.mu.Unlock()
		for _, fn := range cmds {
			fn()
		}
		for _, a := range adopted {
			l.start(a)
		}
	case slotListener:
		l.accept(sl.ln)
	case slotClient:
		sl.ss.clientEvent(ev.Events)
	case slotServer:
		sl.ss.serverEvent(ev.Events)
	case slotHTTP:
		sl.hc.clientEvent(ev.Events)
	case slotHTTPServer:
		sl.hc.serverEvent(ev.Events)
	case slotIdle:
		l.idleEvent(fd, sl.b, ev.Events)
	}
}

// resumable is a connection that spent its turn with more to do.
type resumable interface {
	// resume gives it its next turn (nothing once it closed).
	resume()
}

// enqueue has the loop resume r after the other connections' turns; queued is r's own
// flag that it is in the list.
func (l *loop) enqueue(r resumable, queued *bool) {
	if !*queued {
		*queued = true
		l.ready = append(l.ready, r)
	}
}

// runReady goes on with the connections that spent their budget.
func (l *loop) runReady() {
	if len(l.ready) == 0 {
		return
	}
	ready := l.ready
	l.ready = nil
	for _, r := range ready {
		r.resume()
	}
}

func (ss *session) resume() {
	ss.queued = false
	if ss.state == sessOpen {
		ss.run()
	}
}

// expire fires the timers due and polls the paused listeners due again.
func (l *loop) expire() {
	for len(l.timers) > 0 && l.timers[0].timer().at <= l.now {
		heap.Pop(&l.timers).(timed).expired()
	}
	for ln, until := range l.listeners {
		if until != 0 && until <= l.now {
			l.addListener(ln)
		}
	}
}

// setTimer has t's expired called at at (Unix nanoseconds), instead of when it was due.
func (l *loop) setTimer(t timed, at int64) {
	l.stopTimer(t)
	t.timer().at = at
	heap.Push(&l.timers, t)
}

func (l *loop) stopTimer(t timed) {
	if i := t.timer().index; i >= 0 {
		heap.Remove(&l.timers, i)
	}
}

// shutdown closes the loop's connections and lets go of its listeners.
func (l *loop) shutdown() {
	for fd := range l.slots {
		switch sl := l.slots[fd]; sl.kind {
		case slotClient:
			sl.ss.close()
		case slotHTTP:
			sl.hc.close()
		case slotIdle:
			l.closeFD(fd)
		}
	}
	for ln := range l.listeners {
		l.dropListener(ln)
	}
	l.mu.Lock()
	l.stopped = true
	l.cmds = nil
	for _, a := range l.adopted {
		rawClose(a.fd)
	}
	l.conns.Add(-int32(len(l.adopted)))
	l.adopted = nil
	rawClose(l.wakefd)
	l.mu.Unlock()
	l.file.Close()
}

// accept takes the connections waiting on ln: those of a TCP service to a session,
// those of an HTTP service to the HTTP path. The service is the one the port has in
// the table current at that moment.
func (l *loop) accept(ln *rawListener) {
	for range acceptBatch {
		svc := l.s.routes.Load().byListen[ln.key]
		isHTTP := ln.kind != "" || svc != nil && svc.def.Mode == ModeHTTP
		fd, ip, errno := rawAccept(ln.fd, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		switch errno {
		case 0:
		case syscall.ECONNABORTED:
			continue
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM:
			l.s.log.Warn("accept failed: pausing the port", "port", ln.key, "for", acceptPause, "err", errno)
			l.unregister(ln.fd)
			l.listeners[ln] = l.now + int64(acceptPause)
			return
		default:
			// EAGAIN: none left. EINVAL: the port was closed, and the loop is told so.
			return
		}
		switch {
		case ln.kind != "":
			l.place(accepted{fd: fd, ip: ip, http: ln.kind})
		case svc == nil:
			rawClose(fd)
		case isHTTP:
			l.place(accepted{fd: fd, ip: ip, http: ln.key})
		case !svc.allows(ip):
			svc.stats.denied.Add(1)
			rawClose(fd)
		default:
			l.place(accepted{fd: fd, ip: ip, svc: svc})
		}
	}
}

// accepted is a connection accepted and not yet started: on the HTTP path of the port
// http names, or else as a TCP session of svc.
type accepted struct {
	fd   int
	ip   netip.Addr
	http string
	svc  *service
}

// place starts a connection the loop accepted on the loop serving the fewest, this one
// unless another serves at least two fewer. Every loop polls every port and the first
// to wake takes what waits, so without this one loop can end up with all of a burst of
// connections (wrk's 64 did) and serve them alone, leaving the others idle.
func (l *loop) place(a accepted) {
	to, least := l, l.conns.Load()-1
	for _, o := range l.e.loops {
		if n := o.conns.Load(); n < least {
			to, least = o, n
		}
	}
	to.conns.Add(1)
	if to != l {
		if to.adopt(a) {
			return
		}
		to.conns.Add(-1)
		l.conns.Add(1)
	}
	l.start(a)
}

// start serves a connection placed on the loop (and counted in its conns).
func (l *loop) start(a accepted) {
	if a.http != "" {
		l.startHTTP(a.fd, a.ip, a.http)
	} else {
		l.startSession(a.fd, a.ip, a.svc)
	}
}

// States of a session.
const (
	sessNew = iota
	sessResolving
	sessConnecting
	sessOpen
	sessClosed
)

// session is a client's connection to a TCP service and the one to its backend.
type session struct {
	l        *loop
	svc      *service
	b        *backend // the backend connected, or being tried
	client   int
	server   int // -1 while there is none
	clientIP netip.Addr
	tried    []*backend
	triedBuf [4]*backend
	// attempt counts the backends tried, telling a name lookup's answer for the one
	// being tried from a late one.
	attempt uint32
	state   int
	// up is the client's bytes to the backend, down the backend's to the client.
	up, down flow
	// What the sockets' events said since: readable, writable, and whether the peer
	// ended (or broke) its side, after which reads go on until they tell so.
	clientIn, clientOut, clientEnd bool
	serverIn, serverOut, serverEnd bool
	// queued: in the loop's ready list.
	queued bool
	// draining: the backend finished, and the client has the idle timeout to.
	draining bool
	// tm is the session's one timer (connect or drain) in the loop's heap.
	tm timerEntry
}

// flow is one direction of a session.
type flow struct {
	// pending is what was read and its destination could not take yet, in buf.
	pending []byte
	buf     *[]byte
	// eof: the source ended (or broke, or the destination did); shut: the destination
	// was told (its sending side shut down).
	eof, shut bool
	n         int64
	counted   bool
}

func (f *flow) hold(p []byte) {
	if f.buf == nil {
		f.buf = pendingBuffers.Get().(*[]byte)
	}
	f.pending = append((*f.buf)[:0], p...)
}

func (f *flow) release() {
	f.pending = nil
	if f.buf != nil {
		pendingBuffers.Put(f.buf)
		f.buf = nil
	}
}

func (l *loop) startSession(fd int, ip netip.Addr, svc *service) {
	ss := &session{l: l, svc: svc, client: fd, server: -1, clientIP: ip, tm: timerEntry{index: -1}}
	ss.tried = ss.triedBuf[:0]
	svc.stats.sessions.Add(1)
	if err := l.register(fd, slot{kind: slotClient, ss: ss}, connEvents); err != nil {
		svc.stats.failures.Add(1)
		l.closeClient(fd)
		return
	}
	ss.connectNext()
}

// connectNext connects to the next backend the balance algorithm picks, up to
// Attempts of them; a session none takes is closed.
func (ss *session) connectNext() {
	s := ss.l.s
	var client string
	if ss.svc.def.Balance == BalanceSource {
		client = ss.clientIP.String()
	}
	for len(ss.tried) < s.cfg.Attempts {
		b := ss.svc.pick(client, "", ss.tried)
		if b == nil {
			break
		}
		ss.tried = append(ss.tried, b)
		ss.b = b
		ss.attempt++
		switch {
		case b.dialAddr.IsValid():
			if ss.dial(b.dialAddr) {
				return
			}
		case b.host != "":
			ss.resolve(b)
			return
		default:
			s.eject(b, fmt.Errorf("address %q is not host:port", b.addr))
		}
	}
	ss.svc.stats.failures.Add(1)
	ss.close()
}

// dial starts connecting to ap; false when that failed at once (the backend ejected).
func (ss *session) dial(ap netip.AddrPort) bool {
	l, b := ss.l, ss.b
	fd, pending, err := l.dial(ap, slot{kind: slotServer, ss: ss})
	if err != nil {
		l.s.eject(b, fmt.Errorf("%s: %w", b.addr, err))
		return false
	}
	ss.server = fd
	if pending {
		ss.state = sessConnecting
		l.setTimer(ss, l.now+int64(l.s.cfg.DialTimeout))
		return true
	}
	ss.connected()
	return true
}

// dial opens a non-blocking connection to ap, polled as sl says: its socket, and
// whether the connect is still in progress (writable once done). A connection that
// failed at once is closed and its error returned.
func (l *loop) dial(ap netip.AddrPort, sl slot) (fd int, pending bool, err error) {
	if fd, err = backendSocket(ap.Addr()); err != nil {
		return -1, false, err
	}
	if err := l.register(fd, sl, connEvents); err != nil {
		rawClose(fd)
		return -1, false, fmt.Errorf("poll connection: %w", err)
	}
	switch errno := rawConnect(fd, ap); errno {
	case 0:
		return fd, false, nil
	case syscall.EINPROGRESS:
		return fd, true, nil
	default:
		l.closeFD(fd)
		return -1, false, os.NewSyscallError("connect", errno)
	}
}

// resolve looks up the backend's host name off the loop, then connects.
func (ss *session) resolve(b *backend) {
	ss.state = sessResolving
	l, attempt := ss.l, ss.attempt
	l.s.wg.Go(func() {
		ctx, cancel := context.WithTimeout(l.e.ctx, l.s.cfg.DialTimeout)
		ip, err := resolveHost(ctx, b.host)
		cancel()
		l.post(func() {
			if ss.state != sessResolving || ss.attempt != attempt {
				return
			}
			if err != nil {
				l.s.eject(b, fmt.Errorf("resolve %s: %w", b.addr, err))
				ss.connectNext()
				return
			}
			if !ss.dial(netip.AddrPortFrom(ip, b.port)) {
				ss.connectNext()
			}
		})
	})
}

// dropServer closes the connection (or attempt) to the backend.
func (ss *session) dropServer() {
	ss.l.stopTimer(ss)
	ss.l.closeFD(ss.server)
	ss.server = -1
	ss.serverIn, ss.serverOut, ss.serverEnd = false, false, false
}

func (ss *session) connected() {
	ss.l.stopTimer(ss)
	ss.state = sessOpen
	ss.serverOut = true
	ss.b.sessions.Add(1)
	ss.b.active.Add(1)
	ss.svc.stats.active.Add(1)
	ss.run()
}

// expired: the connect timed out, or the client did not finish within the idle timeout
// of the backend finishing.
func (ss *session) expired() {
	switch {
	case ss.state == sessConnecting:
		ss.dropServer()
		ss.l.s.eject(ss.b, fmt.Errorf("connect %s: timed out after %v", ss.b.addr, ss.l.s.cfg.DialTimeout))
		ss.connectNext()
	case ss.state == sessOpen && ss.draining:
		ss.close()
	}
}

func (ss *session) clientEvent(ev uint32) {
	noteEvents(ev, &ss.clientIn, &ss.clientOut, &ss.clientEnd)
	if ss.state == sessOpen {
		ss.run()
	}
}

func (ss *session) serverEvent(ev uint32) {
	if ss.state == sessConnecting {
		if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			if err := socketErr(ss.server); err != nil {
				ss.dropServer()
				ss.l.s.eject(ss.b, fmt.Errorf("connect %s: %w", ss.b.addr, err))
				ss.connectNext()
				return
			}
		} else if ev&unix.EPOLLOUT == 0 {
			return
		}
		ss.noteServer(ev)
		ss.connected()
		return
	}
	ss.noteServer(ev)
	if ss.state == sessOpen {
		ss.run()
	}
}

// noteServer notes what an event tells of the backend's socket.
func (ss *session) noteServer(ev uint32) {
	noteEvents(ev, &ss.serverIn, &ss.serverOut, &ss.serverEnd)
}

// noteEvents records what an event says of a socket: in, something to read (or an end,
// which a read tells); out, room to write; end, its peer ended or it broke.
func noteEvents(ev uint32, in, out, end *bool) {
	*in = *in || ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	*end = *end || ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	*out = *out || ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0
}

// run copies what can be copied both ways; the session closes once both directions
// are done.
func (ss *session) run() {
	again := ss.transfer(&ss.up, ss.client, ss.server, &ss.clientIn, &ss.serverOut, ss.clientEnd)
	if ss.transfer(&ss.down, ss.server, ss.client, &ss.serverIn, &ss.clientOut, ss.serverEnd) {
		again = true
	}
	if ss.up.shut && ss.down.shut {
		ss.close()
		return
	}
	if ss.down.shut && !ss.draining {
		// The backend is done; the client gets the idle timeout to finish sending.
		ss.draining = true
		ss.l.setTimer(ss, ss.l.now+int64(ss.l.s.cfg.IdleTimeout))
	}
	if again {
		ss.l.enqueue(ss, &ss.queued)
	}
}

// transfer copies f from src to dst until one would block, src ends or the budget is
// spent (true: there may be more). srcIn and dstOut are what the events said of src and
// dst, updated as reads and writes tell more; srcEnd: src's peer ended, so a short read
// is not taken for an empty socket.
func (ss *session) transfer(f *flow, src, dst int, srcIn, dstOut *bool, srcEnd bool) bool {
	buf := ss.l.buf[:tcpReadSize]
	for range transferBudget {
		if len(f.pending) > 0 {
			if !*dstOut {
				return false
			}
			n, errno := rawSend(dst, f.pending)
			if errno != 0 {
				if errno == syscall.EAGAIN {
					*dstOut = false
				} else {
					ss.broken(f, dst)
				}
				return false
			}
			f.n += int64(n)
			f.pending = f.pending[n:]
			if len(f.pending) > 0 {
				*dstOut = false
				return false
			}
			f.release()
		}
		if f.eof {
			if !f.shut {
				// With the other direction done too, the session's close sends the FIN.
				if other := ss.other(f); !other.shut {
					_, _, _ = syscall.RawSyscall(syscall.SYS_SHUTDOWN, uintptr(dst), unix.SHUT_WR, 0)
				}
				ss.finish(f)
			}
			return false
		}
		if !*srcIn {
			return false
		}
		n, errno := rawRecv(src, buf)
		if errno == syscall.EAGAIN {
			*srcIn = false
			return false
		}
		if errno != 0 || n == 0 {
			f.eof = true
			continue
		}
		if n < len(buf) && !srcEnd {
			// A stream socket read short has nothing more: what arrives next is a new
			// edge.
			*srcIn = false
		}
		data := buf[:n]
		if *dstOut {
			m, errno := rawSend(dst, data)
			switch {
			case errno == 0:
				f.n += int64(m)
				data = data[m:]
			case errno != syscall.EAGAIN:
				ss.broken(f, dst)
				return false
			}
			if len(data) > 0 {
				*dstOut = false
			}
		}
		if len(data) > 0 {
			f.hold(data)
		}
	}
	return true
}

// other is the direction opposite f.
func (ss *session) other(f *flow) *flow {
	if f == &ss.up {
		return &ss.down
	}
	return &ss.up
}

// broken ends a direction whose destination failed a write: nothing more can go there.
func (ss *session) broken(f *flow, dst int) {
	f.release()
	f.eof = true
	_, _, _ = syscall.RawSyscall(syscall.SYS_SHUTDOWN, uintptr(dst), unix.SHUT_WR, 0)
	ss.finish(f)
}

// finish marks a direction done and counts its bytes.
func (ss *session) finish(f *flow) {
	f.shut = true
	ss.count(f)
}

func (ss *session) count(f *flow) {
	if f.counted || ss.state != sessOpen {
		return
	}
	f.counted = true
	n := uint64(f.n)
	if f == &ss.up {
		ss.b.bytesIn.Add(n)
		ss.svc.stats.bytesIn.Add(n)
	} else {
		ss.b.bytesOut.Add(n)
		ss.svc.stats.bytesOut.Add(n)
	}
}

// close closes both connections.
func (ss *session) close() {
	if ss.state == sessClosed {
		return
	}
	l := ss.l
	l.stopTimer(ss)
	if ss.state == sessOpen {
		ss.count(&ss.up)
		ss.count(&ss.down)
		ss.b.active.Add(-1)
		ss.svc.stats.active.Add(-1)
	}
	ss.state = sessClosed
	l.closeClient(ss.client)
	if ss.server >= 0 {
		l.closeFD(ss.server)
		ss.server = -1
	}
	ss.up.release()
	ss.down.release()
}

// timed is a connection with a timer in its loop's heap (at most one each).
type timed interface {
	timer() *timerEntry
	// expired is called on the loop when the timer fires.
	expired()
}

// timerEntry is a timer: when it fires (Unix nanoseconds) and its place in the heap (-1
// when not in it).
type timerEntry struct {
	at    int64
	index int
}

func (ss *session) timer() *timerEntry { return &ss.tm }

// timerHeap orders the timers by when they fire.
type timerHeap []timed

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].timer().at < h[j].timer().at }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timer().index, h[j].timer().index = i, j
}

func (h *timerHeap) Push(x any) {
	t := x.(timed)
	t.timer().index = len(*h)
	*h = append(*h, t)
}

func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.timer().index = -1
	return t
}
