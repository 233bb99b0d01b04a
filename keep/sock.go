package keep

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// readSize is the buffer a connection starts with: a burst of small
	// messages is read, and forwarded, in one go.
	readSize = 64 << 10
	// maxFDs is how many fds one read can bring (dbus-daemon allows 16
	// per message on the session bus, 1024 at most anywhere).
	maxFDs = 1024
	// shrinkAfter is how many reads of small messages a grown buffer
	// waits before it shrinks back to readSize.
	shrinkAfter = 1024
	// maxLine bounds a line of the authentication conversation.
	maxLine = 16 << 10
)

var errLineTooLong = errors.New("keep: authentication line too long")

// sock is one end of a connection the keeper holds: a unix socket, the
// buffer its messages are parsed in (bytes [start, end) not yet handed
// on), and the fds that came with them and no message has taken yet.
type sock struct {
	c *net.UnixConn
	// f is the socket once it is off Go's netpoller for the keeper's
	// poller (block); raw is f's. Every read and write then goes
	// through them. Set under wmu and cmu by the reader itself.
	f   *os.File
	raw syscall.RawConn
	// cmu orders block, shut and the poller's registration; closed:
	// shut was called. p is the poller serving the socket, if any.
	cmu    sync.Mutex
	closed bool
	p      *poller
	tok    uint64

	// The reader's and the writers' recvmsg and sendmsg, made once
	// (block), so that they allocate nothing: their arguments and
	// results are here.
	readFn, writeFn func(fd uintptr) bool
	rd, wr          msgIO

	buf        []byte
	start, end int
	fds        []int
	oob        []byte

	// small counts the reads since one needed more than readSize.
	small int

	// out is the reader's scratch for the batch of what it read, on its
	// way to the other side: an upstream's to the app (fromBus).
	out batch

	// wmu orders writes: each batch of messages is written whole. (An
	// app's socket is written in the turns of its conn's appTurn.)
	wmu sync.Mutex
}

func newSock(c *net.UnixConn) *sock { return newSockSize(c, readSize) }

// newSockSize is newSock with a read buffer of size bytes to start with:
// the keeper's short-lived connections of its own need little.
func newSockSize(c *net.UnixConn, size int) *sock {
	return &sock{c: c, buf: make([]byte, size), oob: make([]byte, unix.CmsgSpace(maxFDs*4))}
}

// fill reads what the socket has into the buffer, at least one byte,
// keeping what is not handed on yet. Unless wait, it returns errAgain
// when there is nothing to read.
func (s *sock) fill(wait bool) error {
	need := 0
	if s.end-s.start >= fixedHeader {
		if n, err := msgLen(s.buf[s.start:s.end]); err == nil {
			need = n
		}
	}
	if need > readSize {
		s.small = 0
	}
	switch {
	case s.start == s.end:
		s.start, s.end = 0, 0
		if len(s.buf) > readSize {
			// A big message made the buffer grow: give the memory
			// back once big messages have stopped coming, not at
			// each one (that would allocate per message).
			if s.small++; s.small > shrinkAfter {
				s.buf, s.small = make([]byte, readSize), 0
			}
		}
	case s.start > 0 && (len(s.buf)-s.end < readSize/4 || s.start+need > len(s.buf)):
		s.end = copy(s.buf, s.buf[s.start:s.end])
		s.start = 0
	}
	// A message bigger than the buffer makes it grow by doubling as its
	// bytes come, not at once to the size its header announces: sixteen
	// bytes must not cost the 128 MiB they may claim.
	if s.end == len(s.buf) {
		nb := make([]byte, 2*len(s.buf))
		s.end = copy(nb, s.buf[s.start:s.end])
		s.start = 0
		s.buf = nb
	}
	n, oobn, flags, err := s.recv(s.buf[s.end:], s.oob, wait)
	if err == errAgain {
		return err
	}
	if oobn > 0 {
		if perr := s.takeRights(s.oob[:oobn]); perr != nil && err == nil {
			err = perr
		}
	}
	if flags&unix.MSG_CTRUNC != 0 && err == nil {
		err = fmt.Errorf("%w: fds truncated", errProtocol)
	}
	s.end += n
	if n > readSize {
		s.small = 0
	}
	if n == 0 && err == nil {
		err = io.EOF
	}
	return err
}

// takeRights keeps the fds of an SCM_RIGHTS control message, or closes
// them if the socket was closed meanwhile (close took the list).
func (s *sock) takeRights(oob []byte) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("parse control message: %w", err)
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue // not SCM_RIGHTS
		}
		if s.closed {
			closeFDs(fds)
			continue
		}
		s.fds = append(s.fds, fds...)
	}
	if s.closed {
		return net.ErrClosed
	}
	return nil
}

// next returns the next complete message in the buffer and its offset,
// or nil if the buffer holds only part of one.
func (s *sock) next() ([]byte, int, error) {
	if s.end-s.start < fixedHeader {
		return nil, 0, nil
	}
	n, err := msgLen(s.buf[s.start:s.end])
	if err != nil {
		return nil, 0, err
	}
	if s.end-s.start < n {
		return nil, 0, nil
	}
	off := s.start
	s.start += n
	return s.buf[off:s.start], off, nil
}

// takeFDs moves the first n received fds to dst. The list of fds is
// guarded by cmu, as close may empty it from another goroutine (the
// replay's clean-up, toDown) while the reader takes from it: an fd must
// be closed once, by one of them, never twice (by then its number may be
// another connection's). Messages without fds take no lock.
func (s *sock) takeFDs(dst []int, n int) ([]int, error) {
	if n == 0 {
		return dst, nil
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.closed {
		return dst, net.ErrClosed
	}
	if n > len(s.fds) {
		return dst, fmt.Errorf("%w: message has %d fds, %d received", errProtocol, n, len(s.fds))
	}
	dst = append(dst, s.fds[:n]...)
	s.fds = s.fds[:copy(s.fds, s.fds[n:])]
	return dst, nil
}

// readLine reads one line of the authentication conversation, without
// its "\r\n".
func (s *sock) readLine() (string, error) {
	for {
		b := s.buf[s.start:s.end]
		for i := 0; i+1 < len(b); i++ {
			if b[i] == '\r' && b[i+1] == '\n' {
				s.start += i + 2
				return string(b[:i]), nil
			}
		}
		if len(b) > maxLine {
			return "", errLineTooLong
		}
		if err := s.fill(true); err != nil {
			return "", err
		}
	}
}

// block takes the socket off Go's netpoller, so that the keeper's poller
// (poller.go) serves it: a message then costs one wake of the poller's
// thread, not a netpoller wake and a goroutine hand-off between threads
// (BENCH.md has the profile). The fd stays non-blocking; a goroutine
// that must wait to write waits on a dup of it (writeWaiting). The caller
// is the socket's only reader and nobody writes to it yet.
func (s *sock) block() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	if s.f != nil {
		return nil
	}
	rc, err := s.c.SyscallConn()
	if err != nil {
		return err
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return err
	}
	if derr != nil {
		return derr
	}
	// Closing the conn takes the socket off the netpoller (the dup
	// keeps it open); a file made with os.NewFile of a blocking fd is
	// never put on it, so the fd is made non-blocking after.
	s.c.Close()
	unix.SetNonblock(nfd, false)
	f := os.NewFile(uintptr(nfd), "keep")
	raw, err := f.SyscallConn()
	if err == nil {
		raw.Control(func(fd uintptr) { err = unix.SetNonblock(int(fd), true) })
	}
	if err != nil {
		f.Close()
		s.closed = true
		return err
	}
	s.f, s.raw = f, raw
	s.readFn = func(fd uintptr) bool {
		s.rd.sys(int(fd), unix.SYS_RECVMSG, unix.MSG_CMSG_CLOEXEC)
		return true
	}
	s.writeFn = func(fd uintptr) bool {
		s.wr.sys(int(fd), unix.SYS_SENDMSG, unix.MSG_NOSIGNAL)
		return true
	}
	return nil
}

// msgIO is one recvmsg or sendmsg: its buffers, and what it did.
type msgIO struct {
	b, oob []byte
	hdr    unix.Msghdr
	iov    unix.Iovec
	n      int
	oobn   int
	flags  int
	err    error
}

func (m *msgIO) sys(fd int, trap, flags uintptr) {
	m.hdr = unix.Msghdr{}
	if len(m.b) > 0 {
		m.iov.Base = &m.b[0]
		m.iov.SetLen(len(m.b))
		m.hdr.Iov = &m.iov
		m.hdr.SetIovlen(1)
	}
	if len(m.oob) > 0 {
		m.hdr.Control = &m.oob[0]
		m.hdr.SetControllen(len(m.oob))
	}
	for {
		r, _, e := unix.Syscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&m.hdr)), flags)
		if e == unix.EINTR {
			continue
		}
		m.n, m.oobn, m.flags, m.err = int(r), int(m.hdr.Controllen), int(m.hdr.Flags), nil
		if e != 0 {
			m.n, m.oobn, m.err = 0, 0, e
		}
		m.iov, m.hdr = unix.Iovec{}, unix.Msghdr{}
		m.b, m.oob = nil, nil
		return
	}
}

// errAgain: the socket cannot be read or written without waiting.
var errAgain = errors.New("keep: would block")

// recv reads what the socket has, with the fds that came with it. Unless
// wait, it returns errAgain rather than waiting for it.
func (s *sock) recv(b, oob []byte, wait bool) (n, oobn, flags int, err error) {
	if s.f == nil {
		n, oobn, flags, _, err = s.c.ReadMsgUnix(b, oob)
		return n, oobn, flags, err
	}
	for {
		s.rd.b, s.rd.oob = b, oob
		cerr := s.raw.Read(s.readFn)
		if cerr != nil {
			return 0, 0, 0, net.ErrClosed
		}
		n, oobn, flags, err = s.rd.n, s.rd.oobn, s.rd.flags, s.rd.err
		if err != unix.EAGAIN {
			break
		}
		if !wait {
			return 0, 0, 0, errAgain
		}
		if err := s.poll(unix.POLLIN, time.Time{}); err != nil {
			return 0, 0, 0, err
		}
	}
	if err != nil {
		return 0, 0, 0, err
	}
	return n, oobn, flags, nil
}

// poll waits until the socket is ready for events or deadline (if not
// zero) passes. Closing the socket shuts it down, which ends the wait.
func (s *sock) poll(events int16, deadline time.Time) error {
	for {
		ms := -1
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		var err error
		cerr := s.raw.Control(func(fd uintptr) {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
			_, err = unix.Poll(pfd, ms)
		})
		if cerr != nil {
			return net.ErrClosed
		}
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// write1 writes some of b, with oob (fds) and its first byte. Unless
// wait, it returns errAgain rather than waiting to write anything; if
// wait, it waits until deadline (if not zero). The caller holds wmu.
func (s *sock) write1(b, oob []byte, wait bool, deadline time.Time) (int, error) {
	if s.f == nil {
		if !deadline.IsZero() {
			s.c.SetWriteDeadline(deadline)
			defer s.c.SetWriteDeadline(time.Time{})
		}
		if oob == nil {
			return s.c.Write(b)
		}
		n, _, err := s.c.WriteMsgUnix(b, oob, nil)
		return n, err
	}
	s.wr.b, s.wr.oob = b, oob
	if cerr := s.raw.Write(s.writeFn); cerr != nil {
		return 0, net.ErrClosed
	}
	n, err := s.wr.n, s.wr.err
	switch {
	case err != unix.EAGAIN:
		return n, err
	case !wait:
		return 0, errAgain
	}
	return s.writeWaiting(b, oob, deadline)
}

// writeWaiting writes some of b, with oob, waiting until the socket takes
// it or deadline (if not zero) passes. It waits on Go's netpoller, through
// a dup of the fd made for the wait: a goroutine waiting in poll(2) would
// hold a P, and make the runtime take it back from the poller's thread.
func (s *sock) writeWaiting(b, oob []byte, deadline time.Time) (int, error) {
	dfd, derr := -1, error(nil)
	if cerr := s.raw.Control(func(fd uintptr) { dfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil {
		return 0, net.ErrClosed
	}
	if derr != nil {
		return 0, derr
	}
	f := os.NewFile(uintptr(dfd), "keep") // non-blocking: on the netpoller
	defer f.Close()
	if !deadline.IsZero() {
		if err := f.SetWriteDeadline(deadline); err != nil {
			return 0, err
		}
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.SendmsgN(int(fd), b, oob, nil, unix.MSG_NOSIGNAL)
			if werr != unix.EINTR {
				return werr != unix.EAGAIN
			}
		}
	})
	if err != nil {
		return 0, err
	}
	return n, werr
}

// write writes all of b, waiting as it must. The caller holds wmu.
func (s *sock) write(b []byte) error {
	for len(b) > 0 {
		n, err := s.write1(b, nil, true, time.Time{})
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// shut closes the socket, taking it off the poller; its reader, and a
// writer waiting in poll, get an error or the end of the stream.
func (s *sock) shut() {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.f == nil {
		s.c.Close()
		return
	}
	s.raw.Control(func(fd uintptr) {
		if s.p != nil {
			s.p.del(int(fd), s.tok)
		}
		// A poll(2) waiting on the fd does not end at close; it does
		// at shutdown.
		unix.Shutdown(int(fd), unix.SHUT_RDWR)
	})
	// The fd itself is closed once no read or write is using it.
	s.f.Close()
}

// close closes the socket and the fds no message took. Any goroutine may
// call it, while the reader reads: the fds are taken under cmu, and once
// closed the socket keeps no more (takeRights closes what still comes).
func (s *sock) close() {
	s.shut()
	s.cmu.Lock()
	defer s.cmu.Unlock()
	closeFDs(s.fds)
	s.fds = nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// fdSeg is a message of a batch that carries fds: output bytes [off, end)
// go with fds[fd0:fd1] of the batch.
type fdSeg struct{ off, end, fd0, fd1 int }

// batch is what one pass over the read buffer sends on: as long as every
// message goes on unchanged it is a slice of the input buffer, copied
// into b only when a message is changed, dropped or added.
type batch struct {
	verbatim       bool
	src            []byte
	srcOff, srcEnd int
	b              []byte
	segs           []fdSeg
	fds            []int
	// pos and seg: how far send has gone.
	pos, seg int
}

func (o *batch) reset(src []byte, off int) {
	o.verbatim, o.src, o.srcOff, o.srcEnd = true, src, off, off
	o.b, o.segs, o.fds = o.b[:0], o.segs[:0], o.fds[:0]
	o.pos, o.seg = 0, 0
}

func (o *batch) len() int {
	if o.verbatim {
		return o.srcEnd - o.srcOff
	}
	return len(o.b)
}

func (o *batch) bytes() []byte {
	if o.verbatim {
		return o.src[o.srcOff:o.srcEnd]
	}
	return o.b
}

// copied switches to building the batch in b.
func (o *batch) copied() {
	if o.verbatim {
		o.b = append(o.b[:0], o.src[o.srcOff:o.srcEnd]...)
		o.verbatim = false
	}
}

// pass sends src[off:end] on unchanged.
func (o *batch) pass(off, end int) {
	if o.verbatim && off == o.srcEnd {
		o.srcEnd = end
		return
	}
	o.copied()
	o.b = append(o.b, o.src[off:end]...)
}

// withFDs records that the output bytes from off to now go with fds.
func (o *batch) withFDs(off int, fds []int) {
	if len(fds) == 0 {
		return
	}
	fd0 := len(o.fds)
	o.fds = append(o.fds, fds...)
	o.segs = append(o.segs, fdSeg{off: off, end: o.len(), fd0: fd0, fd1: len(o.fds)})
}

// empty reports whether there is nothing to send.
func (o *batch) empty() bool { return o.len() == 0 }

// send writes the batch to s (whose wmu, or turn, the caller holds), each message
// with fds in a sendmsg of its own so that the fds arrive with its first
// byte, and closes the keeper's copies of the fds. Unless wait, it
// returns errAgain when s cannot take more without waiting: a later send
// of the same batch goes on from there. If wait, it waits until deadline
// (if not zero).
func (s *sock) send(o *batch, wait bool, deadline time.Time) error {
	b := o.bytes()
	put := func(end int, oob []byte) error {
		for o.pos < end {
			n, err := s.write1(b[o.pos:end], oob, wait, deadline)
			if n > 0 {
				o.pos, oob = o.pos+n, nil
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	for ; err == nil && o.seg < len(o.segs); o.seg++ {
		seg := o.segs[o.seg]
		if err = put(seg.off, nil); err != nil {
			break
		}
		var oob []byte
		if o.pos == seg.off {
			oob = unix.UnixRights(o.fds[seg.fd0:seg.fd1]...)
		}
		if err = put(seg.end, oob); err != nil {
			break
		}
	}
	if err == nil {
		err = put(len(b), nil)
	}
	if err == errAgain {
		return err
	}
	closeFDs(o.fds)
	o.fds = o.fds[:0]
	return err
}

// dialBus connects to the first entry of a D-Bus address that answers.
// Only unix sockets can carry fds and credentials, so only they are
// supported.
func dialBus(address string, timeout time.Duration) (*net.UnixConn, error) {
	var firstErr error
	for entry := range strings.SplitSeq(address, ";") {
		if entry == "" {
			continue
		}
		path, err := unixPath(entry)
		if err == nil {
			var c net.Conn
			c, err = (&net.Dialer{Timeout: timeout}).Dial("unix", path)
			if err == nil {
				return c.(*net.UnixConn), nil
			}
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("keep: empty bus address %q", address)
	}
	return nil, firstErr
}

// unixPath returns what to dial for one entry of a D-Bus address:
// a path, or "@name" for an abstract socket.
func unixPath(entry string) (string, error) {
	transport, rest, _ := strings.Cut(entry, ":")
	if transport != "unix" {
		return "", fmt.Errorf("keep: bus address %q: only unix sockets are supported", entry)
	}
	for kv := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(kv, "=")
		v, err := url.PathUnescape(v)
		if err != nil {
			return "", fmt.Errorf("keep: bus address %q: %w", entry, err)
		}
		switch k {
		case "path":
			return v, nil
		case "abstract":
			return "@" + v, nil
		}
	}
	return "", fmt.Errorf("keep: bus address %q: no path= or abstract=", entry)
}
