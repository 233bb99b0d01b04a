package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"busmedic/watcher"
)

// Backend is what the server serves: the recovery engine, with the rules
// reload wired in.
type Backend interface {
	Status() Status
	History(n int) ([]Recovery, error)
	RelaunchNow(ctx context.Context, id string) (Job, error)
	Reload() error
	RestartBus(ctx context.Context, bus string) error
	Learn(casualty string) (rule string, err error)
	// DryRun returns what recovery would do if bus restarted now.
	DryRun(bus string) ([]PlannedJob, error)
	// Peers returns who is on each bus now, by bus name.
	Peers() map[string][]watcher.Peer
	Pause()
	Resume()
	// ReportTray takes the tray child's report on its icon's host.
	ReportTray(h TrayHost)
	// ReportKept takes the keeper's report on one bus (OpKept): the
	// apps it keeps, and what it replayed after a restart. It must not
	// block: the keeper waits for the answer.
	ReportKept(r KeptReport)
	// Notify shows n as a desktop notification. It returns once n is
	// handed on, not when it is shown.
	Notify(n Notice) error
	// Changed gets a value whenever Status changes. The server is its
	// only reader and fans it out to watching clients.
	Changed() <-chan struct{}
}

// The server's limits. A Server copies them in Listen; tests change its
// copies (see export_test.go), never these.
const (
	// DefaultMaxClients is how many connections are served at once. A
	// client over the cap is not kept waiting (it would hold a descriptor
	// all the same): it gets a Response whose Error says so, and is closed.
	DefaultMaxClients = 64
	// DefaultIdleTimeout closes a connection that sends no request for
	// this long. A watch stream is not idle: the server writes to it.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultWriteTimeout drops a client that does not take a reply, or a
	// watch update, within this long.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMaxLine is the longest request line; a longer one gets an
	// error reply and the connection is closed.
	DefaultMaxLine = 64 << 10
	// When accept fails for want of resources (descriptors, buffers), the
	// server waits and tries again, from acceptBackoffMin doubling up to
	// acceptBackoffMax, rather than stopping.
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// Server is a listening control socket. Create it with Listen.
type Server struct {
	path string
	ln   *net.UnixListener
	lock *os.File
	log  *slog.Logger

	// The limits, set by Listen from the constants above.
	maxClients   int
	idleTimeout  time.Duration
	writeTimeout time.Duration
	maxLine      int
	backoffMin   time.Duration
	backoffMax   time.Duration

	mu       sync.Mutex
	watchers map[chan struct{}]struct{}
	clients  int  // connections being served
	full     bool // clients were refused since the count was last below the cap
}

// Listen takes the per-user lock next to path and listens on path. It
// returns an error wrapping ErrRunning if another daemon holds the lock.
func Listen(path string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, lock, err := ListenLocked(path)
	if err != nil {
		return nil, err
	}
	return &Server{
		path: path, ln: ln, lock: lock, log: log,
		maxClients:   DefaultMaxClients,
		idleTimeout:  DefaultIdleTimeout,
		writeTimeout: DefaultWriteTimeout,
		maxLine:      DefaultMaxLine,
		backoffMin:   acceptBackoffMin,
		backoffMax:   acceptBackoffMax,
		watchers:     map[chan struct{}]struct{}{},
	}, nil
}

// ListenLocked is how busmedic's sockets are made, one process per user
// for each: it takes the lock file path+".lock" (flock, held until lock is
// closed, or the process ends), and listens on path, mode 0600 in a
// directory made 0700. It returns an error wrapping ErrRunning if another
// process holds the lock. Holding the lock, a socket file left at path is
// a dead process's and is replaced. Closing ln removes the socket file;
// close lock after it. The keeper's socket (KeepPath) is made so too.
func ListenLocked(path string) (ln *net.UnixListener, lock *os.File, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("socket directory: %w", err)
	}
	// MkdirAll keeps an existing directory's mode; ours must not be
	// reachable by others.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("socket directory: %w", err)
	}
	lockPath := path + ".lock"
	lock, err = os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil, fmt.Errorf("%w (lock %s held)", ErrRunning, lockPath)
		}
		return nil, nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	// Holding the lock, a socket file left here is a dead process's.
	_ = os.Remove(path)
	old := unix.Umask(0o177)
	ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	return ln, lock, nil
}

// Held reports whether a process holds the lock of the socket at path
// (ListenLocked), without taking it: then that process serves the socket,
// or is about to. Unlike a connection, asking leaves no trace with the
// server.
func Held(path string) (bool, error) {
	lock, err := os.Open(path + ".lock")
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock %s.lock: %w", path, err)
	}
	defer lock.Close()
	// A shared lock is refused while the holder has its exclusive one;
	// one we get is let go of at once with the file.
	err = unix.Flock(int(lock.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	switch {
	case errors.Is(err, unix.EWOULDBLOCK):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("lock %s.lock: %w", path, err)
	}
	return false, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Serve answers clients until ctx is done, then closes the socket and
// releases the lock, and returns nil. A failure to accept for want of
// resources (descriptors, memory) is waited out; any other ends Serve with
// the error, the socket closed and the lock released all the same, so that
// the daemon exits rather than running with no control socket.
func (s *Server) Serve(ctx context.Context, b Backend) error {
	// Serve's own context also ends the connections when accept fails.
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		s.ln.Close()
		wg.Wait()
		s.lock.Close()
	}()
	wg.Go(func() {
		<-ctx.Done()
		s.ln.Close()
	})
	wg.Go(func() { s.fanOut(ctx, b.Changed()) })
	var delay time.Duration // the pause before the next accept; 0 when accept works
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !temporary(err) {
				return fmt.Errorf("control socket %s: %w", s.path, err)
			}
			if delay == 0 {
				delay = s.backoffMin
				s.log.Warn("control socket: cannot accept a client; retrying", "err", err)
			} else {
				delay = min(2*delay, s.backoffMax)
				s.log.Debug("control socket: cannot accept a client; retrying", "err", err, "in", delay)
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		if delay != 0 {
			s.log.Info("control socket: accepting clients again")
			delay = 0
		}
		if !s.admit() {
			s.refuse(conn)
			continue
		}
		wg.Go(func() {
			// Released before the connection is closed: a client that sees
			// it closed finds its place free.
			defer conn.Close()
			defer s.leave()
			s.serveConn(ctx, conn, b)
		})
	}
}

// temporary reports whether an accept error is a lack of resources that
// passes as connections end, rather than a broken socket.
func temporary(err error) bool {
	for _, e := range []error{unix.EMFILE, unix.ENFILE, unix.ECONNABORTED, unix.ENOBUFS, unix.ENOMEM, unix.EINTR, unix.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// admit counts a new client in, if there is room.
func (s *Server) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients >= s.maxClients {
		if !s.full {
			s.log.Warn("control socket: too many clients; refusing new ones", "max", s.maxClients)
		}
		s.full = true
		return false
	}
	s.clients++
	return true
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients--
	if s.full && s.clients < s.maxClients {
		s.log.Info("control socket: taking clients again")
		s.full = false
	}
}

// refuse tells a client over the cap why it is closed, without waiting for
// it: its request, if any, is not read.
func (s *Server) refuse(conn *net.UnixConn) {
	defer conn.Close()
	if uid, err := peerUID(conn); err != nil || uid != os.Getuid() {
		return
	}
	s.send(conn, failure(coded(ErrTooManyClients, "busmedic has too many control clients (%d); try again later", s.maxClients)))
}

func (s *Server) fanOut(ctx context.Context, changed <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			s.mu.Lock()
			for w := range s.watchers {
				select {
				case w <- struct{}{}:
				default: // it has a change pending already
				}
			}
			s.mu.Unlock()
		}
	}
}

// errLineTooLong is a request line over the server's maxLine.
var errLineTooLong = errors.New("request line too long")

// readLine returns the next line from r without its line ending. A line
// longer than max bytes is errLineTooLong, read no further. A last line
// without a newline counts.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		n := len(line)
		if err == nil {
			n-- // the newline
		}
		if n > max {
			return nil, errLineTooLong
		}
		switch {
		case err == nil:
			line = line[:n]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, nil
		default:
			return nil, err
		}
	}
}

// serveConn answers one client's requests in order.
func (s *Server) serveConn(ctx context.Context, conn *net.UnixConn, b Backend) {
	// A client that is not our user gets nothing: the API starts programs.
	if uid, err := peerUID(conn); err != nil || uid != os.Getuid() {
		s.log.Warn("control socket: refused a client of another user", "uid", uid, "err", err)
		return
	}
	// The connection ends when the daemon does, even mid-request.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReader(conn)
	for {
		// Idle is the time waiting for a request, not the time spent on one.
		if err := conn.SetReadDeadline(time.Now().Add(s.idleTimeout)); err != nil {
			return
		}
		line, err := readLine(r, s.maxLine)
		switch {
		case errors.Is(err, errLineTooLong):
			s.send(conn, failure(fmt.Errorf("%w: line longer than %d bytes", ErrBadRequest, s.maxLine)))
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.send(conn, failure(coded(errIdle, "closed: no request for %s", s.idleTimeout)))
			return
		case err != nil:
			return
		}
		var req Request
		var resp Response
		if err := json.Unmarshal(line, &req); err != nil {
			resp = failure(fmt.Errorf("%w: %v", ErrBadRequest, err))
		} else if req.Op == OpWatch {
			s.watch(ctx, conn, b)
			return
		} else {
			resp = s.handle(ctx, req, b)
		}
		if !s.send(conn, resp) {
			return
		}
	}
}

func (s *Server) handle(ctx context.Context, req Request, b Backend) Response {
	switch req.Op {
	case OpStatus:
		st := b.Status()
		return Response{OK: true, Status: &st}
	case OpHistory:
		h, err := b.History(req.N)
		if err != nil {
			return failure(err)
		}
		return Response{OK: true, History: h}
	case OpRelaunch:
		if req.ID == "" {
			return failure(coded(ErrBadRequest, "relaunch: no app id"))
		}
		if a, ok := b.Status().App(req.ID); ok && a.Running && !req.Force {
			// Every client asks the user before this, as the daemon
			// cannot: the relaunch would kill a working app.
			return failure(coded(ErrAppRunning, "%s: relaunching it would stop it and start it again", a.Where()))
		}
		job, err := b.RelaunchNow(ctx, req.ID)
		if err != nil {
			resp := failure(err)
			resp.Job = &job
			return resp
		}
		return Response{OK: true, Job: &job}
	case OpReload:
		if err := b.Reload(); err != nil {
			return failure(err)
		}
		return Response{OK: true}
	case OpRestartBus:
		if err := checkBus(req.ID); err != nil {
			return failure(err)
		}
		if err := b.RestartBus(ctx, req.ID); err != nil {
			return failure(err)
		}
		return Response{OK: true}
	case OpLearn:
		rule, err := b.Learn(req.ID)
		if err != nil {
			return failure(err)
		}
		return Response{OK: true, Rule: rule}
	case OpPlan:
		if err := checkBus(req.ID); err != nil {
			return failure(err)
		}
		plan, err := b.DryRun(req.ID)
		if err != nil {
			return failure(err)
		}
		return Response{OK: true, Plan: plan}
	case OpPeers:
		return Response{OK: true, Peers: b.Peers()}
	case OpPause:
		b.Pause()
		return Response{OK: true}
	case OpResume:
		b.Resume()
		return Response{OK: true}
	case OpTray:
		if req.Tray == nil {
			return failure(coded(ErrBadRequest, "tray: no report"))
		}
		b.ReportTray(*req.Tray)
		return Response{OK: true}
	case OpKept:
		if req.Kept == nil || req.Kept.Bus == "" {
			return failure(coded(ErrBadRequest, "kept: no report"))
		}
		if err := checkBus(req.Kept.Bus); err != nil {
			return failure(err)
		}
		b.ReportKept(*req.Kept)
		return Response{OK: true}
	case OpNotify:
		if req.Notice == nil || req.Notice.Title == "" {
			return failure(coded(ErrBadRequest, "notify: no notice title"))
		}
		if err := b.Notify(*req.Notice); err != nil {
			return failure(err)
		}
		return Response{OK: true}
	}
	return failure(coded(ErrBadRequest, "unknown operation %q", req.Op))
}

// checkBus refuses a bus name other than the two the daemon watches.
func checkBus(bus string) error {
	if bus != "session" && bus != "system" {
		return coded(ErrBadRequest, "no bus %q (want session or system)", bus)
	}
	return nil
}

// watch sends the status now and after every change until the client goes.
// The stream is not idle while the server writes to it, so no read
// deadline applies; a client that stops reading is dropped by the write
// deadline instead.
func (s *Server) watch(ctx context.Context, conn *net.UnixConn, b Backend) {
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return
	}
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.watchers[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.watchers, ch)
		s.mu.Unlock()
	}()
	// The client sends nothing more; its hanging up shows as EOF here.
	// A deadline in the past ends the reader before watch returns, leaving
	// the connection to be closed by its owner.
	gone := make(chan struct{})
	var reader sync.WaitGroup
	defer reader.Wait()
	defer func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) }()
	reader.Go(func() {
		defer close(gone)
		var buf [64]byte
		for {
			if _, err := conn.Read(buf[:]); err != nil {
				return
			}
		}
	})
	for {
		st := b.Status()
		if !s.send(conn, Response{OK: true, Status: &st}) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-gone:
			return
		case <-ch:
		}
	}
}

// send writes one reply line; it reports whether the client took it in
// time.
func (s *Server) send(conn *net.UnixConn, resp Response) bool {
	line, err := encodeLine(resp)
	if err != nil {
		s.log.Error("control socket: encode", "err", err)
		return false
	}
	if err := conn.SetWriteDeadline(time.Now().Add(s.writeTimeout)); err != nil {
		return false
	}
	_, err = conn.Write(line)
	return err == nil
}

func peerUID(conn *net.UnixConn) (int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if credErr != nil {
		return -1, credErr
	}
	return int(cred.Uid), nil
}
