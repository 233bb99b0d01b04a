package keep

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

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
	c          *net.UnixConn
	buf        []byte
	start, end int
	fds        []int
	oob        []byte

	// small counts the reads since one needed more than readSize.
	small int

	// wmu orders writes: each batch of messages is written whole.
	wmu sync.Mutex
}

func newSock(c *net.UnixConn) *sock { return newSockSize(c, readSize) }

// newSockSize is newSock with a read buffer of size bytes to start with:
// the keeper's short-lived connections of its own need little.
func newSockSize(c *net.UnixConn, size int) *sock {
	return &sock{c: c, buf: make([]byte, size), oob: make([]byte, unix.CmsgSpace(maxFDs*4))}
}

// fill reads what the socket has into the buffer, at least one byte,
// keeping what is not handed on yet.
func (s *sock) fill() error {
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
	if need > len(s.buf) {
		// A message bigger than the buffer: grow it to hold it whole.
		nb := make([]byte, need)
		s.end = copy(nb, s.buf[s.start:s.end])
		s.start = 0
		s.buf = nb
	}
	if s.end == len(s.buf) {
		nb := make([]byte, 2*len(s.buf))
		s.end = copy(nb, s.buf[s.start:s.end])
		s.start = 0
		s.buf = nb
	}
	n, oobn, flags, _, err := s.c.ReadMsgUnix(s.buf[s.end:], s.oob)
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

// takeRights keeps the fds of an SCM_RIGHTS control message.
func (s *sock) takeRights(oob []byte) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("parse control message: %w", err)
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue // not SCM_RIGHTS
		}
		s.fds = append(s.fds, fds...)
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

// takeFDs moves the first n received fds to dst.
func (s *sock) takeFDs(dst []int, n int) ([]int, error) {
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
		if err := s.fill(); err != nil {
			return "", err
		}
	}
}

// close closes the socket and the fds no message took.
func (s *sock) close() {
	s.c.Close()
	closeFDs(s.fds)
	s.fds = s.fds[:0]
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
}

func (o *batch) reset(src []byte, off int) {
	o.verbatim, o.src, o.srcOff, o.srcEnd = true, src, off, off
	o.b, o.segs, o.fds = o.b[:0], o.segs[:0], o.fds[:0]
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

// send writes the batch to s (whose wmu the caller holds), each message
// with fds in a sendmsg of its own so that the fds arrive with its first
// byte, and closes the keeper's copies of the fds.
func (s *sock) send(o *batch) error {
	defer func() {
		closeFDs(o.fds)
		o.fds = o.fds[:0]
	}()
	b := o.bytes()
	pos := 0
	for _, seg := range o.segs {
		if seg.off > pos {
			if _, err := s.c.Write(b[pos:seg.off]); err != nil {
				return err
			}
		}
		n, _, err := s.c.WriteMsgUnix(b[seg.off:seg.end], unix.UnixRights(o.fds[seg.fd0:seg.fd1]...), nil)
		if err != nil {
			return err
		}
		pos = seg.off + n
		if pos < seg.end {
			if _, err := s.c.Write(b[pos:seg.end]); err != nil {
				return err
			}
		}
		pos = seg.end
	}
	if pos < len(b) {
		if _, err := s.c.Write(b[pos:]); err != nil {
			return err
		}
	}
	return nil
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
