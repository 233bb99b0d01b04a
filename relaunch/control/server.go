package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"busmedic/relaunch"
	"busmedic/watcher"
)

// Backend is what the server serves: the recovery engine, with the rules
// reload wired in.
type Backend interface {
	Status() relaunch.Status
	History(n int) ([]relaunch.Recovery, error)
	RelaunchNow(ctx context.Context, id string) (relaunch.Job, error)
	Reload() error
	RestartBus(ctx context.Context, bus string) error
	Learn(casualty string) (rule string, err error)
	// DryRun returns what recovery would do if bus restarted now.
	DryRun(bus string) ([]relaunch.PlannedJob, error)
	// Peers returns who is on each bus now, by bus name.
	Peers() map[string][]watcher.Peer
	Pause()
	Resume()
	// Changed gets a value whenever Status changes. The server is its
	// only reader and fans it out to watching clients.
	Changed() <-chan struct{}
}

// Server is a listening control socket. Create it with Listen.
type Server struct {
	path string
	ln   *net.UnixListener
	lock *os.File
	log  *slog.Logger

	mu       sync.Mutex
	watchers map[chan struct{}]struct{}
}

// Listen takes the per-user lock next to path and listens on path. It
// returns an error wrapping ErrRunning if another daemon holds the lock.
func Listen(path string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	// MkdirAll keeps an existing directory's mode; ours must not be
	// reachable by others.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	lockPath := path + ".lock"
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (lock %s held)", ErrRunning, lockPath)
		}
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	// Holding the lock, a socket file left here is a dead daemon's.
	_ = os.Remove(path)
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	return &Server{path: path, ln: ln, lock: lock, log: log, watchers: map[chan struct{}]struct{}{}}, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Serve answers clients until ctx is done, then closes the socket and
// releases the lock.
func (s *Server) Serve(ctx context.Context, b Backend) error {
	var wg sync.WaitGroup
	defer func() {
		s.ln.Close()
		wg.Wait()
		s.lock.Close()
	}()
	wg.Go(func() {
		<-ctx.Done()
		s.ln.Close()
	})
	wg.Go(func() { s.fanOut(ctx, b.Changed()) })
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("control socket %s: %w", s.path, err)
		}
		wg.Go(func() { s.serveConn(ctx, conn, b) })
	}
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

// serveConn answers one client's requests in order.
func (s *Server) serveConn(ctx context.Context, conn *net.UnixConn, b Backend) {
	defer conn.Close()
	// A client that is not our user gets nothing: the API starts programs.
	if uid, err := peerUID(conn); err != nil || uid != os.Getuid() {
		s.log.Warn("control socket: refused a client of another user", "uid", uid, "err", err)
		return
	}
	// The connection ends when the daemon does, even mid-request.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	sc := bufio.NewScanner(conn)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var req Request
		var resp Response
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp = Response{Error: fmt.Sprintf("bad request: %v", err)}
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
			return Response{Error: err.Error()}
		}
		return Response{OK: true, History: h}
	case OpRelaunch:
		if req.ID == "" {
			return Response{Error: "relaunch: no app id"}
		}
		job, err := b.RelaunchNow(ctx, req.ID)
		if err != nil {
			return Response{Error: err.Error(), Job: &job}
		}
		return Response{OK: true, Job: &job}
	case OpReload:
		if err := b.Reload(); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true}
	case OpRestartBus:
		if err := b.RestartBus(ctx, req.ID); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true}
	case OpLearn:
		rule, err := b.Learn(req.ID)
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true, Rule: rule}
	case OpPlan:
		plan, err := b.DryRun(req.ID)
		if err != nil {
			return Response{Error: err.Error()}
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
	}
	return Response{Error: fmt.Sprintf("unknown operation %q", req.Op)}
}

// watch sends the status now and after every change until the client goes.
func (s *Server) watch(ctx context.Context, conn *net.UnixConn, b Backend) {
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
	gone := make(chan struct{})
	go func() {
		var buf [64]byte
		for {
			if _, err := conn.Read(buf[:]); err != nil {
				close(gone)
				return
			}
		}
	}()
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

func (s *Server) send(conn *net.UnixConn, resp Response) bool {
	line, err := encodeLine(resp)
	if err != nil {
		s.log.Error("control socket: encode", "err", err)
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
