package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// The keeper ("busmedic keeper") is a process of its own, one per user
// and bus, rather than a part of "busmedic run": a kept app must never lose
// its connection because busmedic's daemon or tray restarted or was
// updated. It serves the kept apps on control.KeepPath(bus), holding the
// lock file beside it as the daemon holds its own (control.ListenLocked),
// and tells the daemon what it keeps over the control socket (OpKept),
// whenever that changes and in full whenever it connects to a daemon
// again, which may have restarted meanwhile. It lives until it is told to
// stop (SIGTERM, SIGINT), or until it keeps nobody and its socket was
// removed or replaced: the session is over.

// KeeperCore is the keeper proper (package keep): it holds the kept apps'
// connections to the bus. It calls the report function it was made with at
// every change and after each replay, never concurrently.
type KeeperCore interface {
	// Serve serves kept apps on l until ctx ends.
	Serve(ctx context.Context, l *net.UnixListener) error
	// Report returns the keeper's account of its bus now.
	Report() control.KeptReport
}

// KeeperConfig is what "busmedic keeper" is told.
type KeeperConfig struct {
	// Bus is the bus kept: "session" (the only one).
	Bus string
	// Socket is where kept apps connect: control.KeepPath(Bus).
	Socket string
	// Control is the daemon's control socket, which the reports go to.
	Control string
	// Address is the real bus's address; "" means the session bus's, from
	// the environment (keptBusAddress).
	Address string
	// New makes the core: address returns the real bus's address, asked
	// at every (re)connect; report is to get each of its reports.
	New func(address func() (string, error), report func(control.KeptReport)) KeeperCore
	// Ready, if set, gets a line once the keeper listens (KeeperReady),
	// or says why it does not (KeeperRunning, or "error: ..."), and is
	// closed: "busmedic keep" waits on it.
	Ready *os.File
	// Log gets the keeper's log; nil means slog.Default().
	Log *slog.Logger
}

// The lines a keeper writes on its ready pipe.
const (
	// KeeperReady: it listens on its socket.
	KeeperReady = "ready"
	// KeeperRunning: another keeper holds the lock, and serves the
	// socket or is about to.
	KeeperRunning = "running"
)

// keeperReportTimeout bounds one report to the daemon; a daemon that does
// not answer gets the report again when the keeper reconnects.
const keeperReportTimeout = 10 * time.Second

// maxPendingReplays bounds the replays kept for a daemon that is away;
// the oldest go first.
const maxPendingReplays = 256

// RunKeeper runs the keeper of cfg.Bus until ctx ends, or until it keeps
// nobody and its socket was removed or replaced. It returns an error
// wrapping control.ErrRunning, having said so on cfg.Ready, when another
// keeper holds the lock: the caller exits quietly then.
func RunKeeper(ctx context.Context, cfg KeeperConfig) (err error) {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	defer func() {
		// Whatever happens, "busmedic keep" hears of it.
		if cfg.Ready != nil {
			switch {
			case errors.Is(err, control.ErrRunning):
				fmt.Fprintln(cfg.Ready, KeeperRunning)
			case err != nil:
				fmt.Fprintln(cfg.Ready, "error: "+strings.ReplaceAll(err.Error(), "\n", " "))
			}
			cfg.Ready.Close()
		}
	}()
	if cfg.Bus != "session" {
		return fmt.Errorf("keeper: bus %q: only the session bus can be kept", cfg.Bus)
	}
	address := cfg.Address
	if address == "" {
		var err error
		if address, err = keptBusAddress(os.Getenv, cfg.Socket); err != nil {
			return err
		}
	}
	// The ready file is made before the lock is taken: a keeper that
	// holds the lock always has one, so a "busmedic keep" that finds
	// none knows the keeper is of a version before it (keeperListens).
	if err := os.MkdirAll(filepath.Dir(cfg.Socket), 0o700); err != nil {
		return fmt.Errorf("keeper: socket directory: %w", err)
	}
	ready, err := os.OpenFile(readyPath(cfg.Socket), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("keeper: ready file: %w", err)
	}
	defer ready.Close()
	ln, lock, err := control.ListenLocked(cfg.Socket)
	if err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	defer lock.Close()
	// The socket is removed at the end only if it is still ours: a new
	// keeper's may be in its place by then.
	ln.SetUnlinkOnClose(false)
	ours, err := os.Stat(cfg.Socket)
	if err != nil {
		ln.Close()
		return fmt.Errorf("keeper: %w", err)
	}
	defer func() {
		if st, err := os.Stat(cfg.Socket); err == nil && os.SameFile(st, ours) {
			_ = os.Remove(cfg.Socket)
		}
	}()
	// It listens: say so to "busmedic keep" by the ready lock, held
	// until the process ends (or, run last of these, before the socket
	// is removed and the lock let go of).
	if err := lockReady(ready); err != nil {
		ln.Close()
		return fmt.Errorf("keeper: %w", err)
	}
	defer ready.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	gone := false // the socket file is no longer ours
	rep := &keptReporter{client: control.NewClient(cfg.Control), log: log, wake: make(chan struct{}, 1)}
	// The end of the session: nobody kept, and no socket for anyone new.
	checkEnd := func() {
		mu.Lock()
		defer mu.Unlock()
		if gone && len(rep.current().Apps) == 0 {
			log.Info("keeper: its socket is gone and it keeps nobody; exiting", "socket", cfg.Socket)
			cancel()
		}
	}
	rep.changed = checkEnd
	core := cfg.New(func() (string, error) { return address, nil }, rep.update)
	rep.update(core.Report())

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { rep.run(ctx) })
	wg.Go(func() {
		err := watchSocket(ctx, cfg.Socket, ours, func() {
			log.Info("keeper: its socket was removed or replaced", "socket", cfg.Socket)
			mu.Lock()
			gone = true
			mu.Unlock()
			checkEnd()
		})
		if err != nil && ctx.Err() == nil {
			log.Warn("keeper: cannot watch its socket; it will run until stopped", "err", err)
		}
	})
	log.Info("keeper running", "bus", cfg.Bus, "socket", cfg.Socket, "address", address, "pid", os.Getpid())
	if cfg.Ready != nil {
		fmt.Fprintln(cfg.Ready, KeeperReady)
		cfg.Ready.Close()
		cfg.Ready = nil
	}
	err = core.Serve(ctx, ln)
	ln.Close() // the core may have closed it already
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("keeper: %w", err)
	}
	log.Info("keeper stopped", "bus", cfg.Bus)
	return nil
}

// keptBusAddress is the address of the bus the keeper connects its apps
// to: the session's, without its guid (a restarted bus has a new one),
// never the keeper's own socket, which a "busmedic keep" run from a kept
// app inherits: then the bus is at its usual place,
// $XDG_RUNTIME_DIR/bus.
func keptBusAddress(getenv func(string) string, socket string) (string, error) {
	addr := getenv("DBUS_SESSION_BUS_ADDRESS")
	if addr == "" || strings.Contains(addr, socket) {
		dir := getenv("XDG_RUNTIME_DIR")
		if dir == "" {
			return "", errors.New("keeper: no session bus address (DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR are unset)")
		}
		addr = "unix:path=" + filepath.Join(dir, "bus")
	}
	return watcher.WithoutGUID(addr), nil
}

// watchSocket calls gone once path is no longer the socket file ours
// describes: removed, replaced, or its directory gone (the runtime
// directory of a session that ended). It watches the directory, as
// editors and logout replace and remove files, until ctx ends.
func watchSocket(ctx context.Context, path string, ours os.FileInfo, gone func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(path)); err != nil {
		return err
	}
	stillOurs := func() bool {
		st, err := os.Stat(path)
		return err == nil && os.SameFile(st, ours)
	}
	if !stillOurs() {
		gone()
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("socket watch closed")
			}
			if ev.Name != path && ev.Name != filepath.Dir(path) {
				continue
			}
			if !stillOurs() {
				gone()
				return nil
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("socket watch closed")
			}
			if !stillOurs() {
				gone()
				return nil
			}
			return err
		}
	}
}

// keptReporter sends the keeper's reports to the daemon: the latest
// report, with every replay not yet delivered (the report after a restart
// carries them once, and a daemon that was away must still get them),
// again after each reconnect to the daemon.
type keptReporter struct {
	client  *control.Client
	log     *slog.Logger
	changed func() // after each report of the core

	mu      sync.Mutex
	latest  control.KeptReport // without replays
	replays []control.Replay   // not yet delivered
	trimmed uint64             // counts the replays dropped from the front of replays, never delivered
	gen     uint64             // counts the reports of the core
	sentGen uint64             // the last delivered
	epoch   uint64             // counts the connections to a daemon
	sentEp  uint64             // the connection the last delivery went over
	wake    chan struct{}
}

// update takes a report of the core. It never blocks: the core's
// connections wait on it.
func (r *keptReporter) update(rep control.KeptReport) {
	r.mu.Lock()
	r.replays = append(r.replays, rep.Replays...)
	if n := len(r.replays); n > maxPendingReplays {
		r.replays = slices.Delete(r.replays, 0, n-maxPendingReplays)
		r.trimmed += uint64(n - maxPendingReplays)
	}
	rep.Replays = nil
	r.latest = rep
	r.gen++
	r.mu.Unlock()
	r.poke()
	if r.changed != nil {
		r.changed()
	}
}

func (r *keptReporter) current() control.KeptReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latest
}

func (r *keptReporter) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// pending returns what the daemon lacks, if anything.
func (r *keptReporter) pending() (rep control.KeptReport, gen, epoch, trimmed uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.latest.Bus == "" || r.gen == r.sentGen && r.epoch == r.sentEp {
		return control.KeptReport{}, 0, 0, 0, false
	}
	rep = r.latest
	rep.Replays = slices.Clone(r.replays)
	return rep, r.gen, r.epoch, r.trimmed, true
}

// delivered records that the report of gen, sent over connection epoch
// with the first n pending replays, reached the daemon; trimmed is the
// count of replays dropped unsent when that report was made: those
// dropped since were among its n, and are gone already.
func (r *keptReporter) delivered(gen, epoch, trimmed uint64, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sentGen, r.sentEp = gen, epoch
	n -= int(min(r.trimmed-trimmed, uint64(n)))
	r.replays = slices.Delete(r.replays, 0, min(n, len(r.replays)))
}

// run sends the reports until ctx ends. It follows the daemon's status
// (control's Follow, with its reconnect and backoff) to know when a daemon
// is there anew: then it sends the whole report again.
func (r *keptReporter) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		connected := false
		r.client.Follow(ctx, func(st *control.Status, err error) {
			if err != nil {
				if connected {
					r.log.Info("keeper: busmedic went away; reporting again when it is back", "err", err)
				}
				connected = false
				return
			}
			if !connected {
				connected = true
				r.mu.Lock()
				r.epoch++
				r.mu.Unlock()
			}
			// A status also tells that the daemon is there: a report
			// that failed is tried again.
			r.poke()
		})
	})
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		rep, gen, epoch, trimmed, ok := r.pending()
		if !ok {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, keeperReportTimeout)
		err := r.client.ReportKept(sctx, rep)
		cancel()
		if err != nil {
			r.log.Debug("keeper: report not delivered", "err", err)
			continue
		}
		r.delivered(gen, epoch, trimmed, len(rep.Replays))
	}
}

// The start of a keeper by "busmedic keep".

// keeperStartTimeout bounds how long "busmedic keep" waits for a keeper.
const keeperStartTimeout = 5 * time.Second

// readyPath is the file a keeper holds locked (flock, exclusive) from the
// moment it listens on socket until it stops: the lock of socket alone
// says a keeper holds it, not that the socket file is that keeper's. A
// keeper that was killed leaves its socket file; the next one removes it
// once it holds the lock, and listens after, so that meanwhile the lock
// is held and the file there is the dead keeper's.
func readyPath(socket string) string { return socket + ".ready" }

// lockReady takes the ready lock of the keeper, waiting if need be: only
// for a "busmedic keep" asking whether it is held (keeperListens takes
// a shared lock for a moment), as the keeper holds the socket's lock.
func lockReady(ready *os.File) error {
	for {
		err := unix.Flock(int(ready.Fd()), unix.LOCK_EX)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("lock %s: %w", ready.Name(), err)
		}
	}
}

// keeperListens reports whether a keeper listens on socket: it holds the
// ready lock. known is false when there is no ready file at all: a
// keeper of a version before the ready lock may hold the socket's lock.
func keeperListens(socket string) (listens, known bool, err error) {
	f, err := os.Open(readyPath(socket))
	if errors.Is(err, os.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("ready file: %w", err)
	}
	defer f.Close()
	// A shared lock is refused while the keeper has its exclusive one;
	// one we get goes with the file.
	switch err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); {
	case errors.Is(err, unix.EWOULDBLOCK):
		return true, true, nil
	case err != nil:
		return false, true, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return false, true, nil
}

// EnsureKeeper makes sure a keeper serves socket: if none holds its lock,
// it runs spawn's command, which starts a keeper detached (in a session of
// its own, so that it outlives the app and its terminal) with the write
// end of a pipe as its fd 3 (ExtraFiles[0]), and waits for the keeper's
// word on that pipe: ready, or another keeper won the lock (two "busmedic
// keep" at once start one keeper), or why it failed. It gives up after
// 5 s.
//
// When the lock is held it waits for the keeper's ready lock (see
// readyPath): the socket file may still be a killed keeper's, which
// refuses connections, while its successor starts.
//
// It asks the locks rather than connecting: a connection would be a client
// of the keeper's, from the very pid that is to become the kept app.
func EnsureKeeper(ctx context.Context, socket string, spawn func() *exec.Cmd) error {
	return ensureKeeper(ctx, socket, spawn, nil)
}

// ensureKeeper is EnsureKeeper; waiting, if set, is called each time it
// waits for a keeper that holds the lock to listen (tests act then).
func ensureKeeper(ctx context.Context, socket string, spawn func() *exec.Cmd, waiting func()) error {
	ctx, cancel := context.WithTimeout(ctx, keeperStartTimeout)
	defer cancel()
	retry := time.Millisecond
	for {
		if ctx.Err() != nil {
			return fmt.Errorf("no keeper listened on %s within %s", socket, keeperStartTimeout)
		}
		held, err := control.Held(socket)
		if err != nil {
			return err
		}
		if !held {
			if _, err := startKeeper(ctx, spawn); err != nil {
				return err
			}
			continue
		}
		listens, known, err := keeperListens(socket)
		if err != nil {
			return err
		}
		if (listens || !known) && isSocket(socket) {
			return nil
		}
		// The holder of the lock is about to listen (there is no event
		// to wait on for a lock being taken).
		if waiting != nil {
			waiting()
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("no keeper listened on %s within %s", socket, keeperStartTimeout)
		case <-t.C:
		}
		retry = min(2*retry, 100*time.Millisecond)
	}
}

// isSocket reports whether path is a socket file.
func isSocket(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().Type() == os.ModeSocket
}

// startKeeper runs spawn's command and returns the keeper's word on its
// ready pipe: KeeperReady or KeeperRunning; any other is an error.
func startKeeper(ctx context.Context, spawn func() *exec.Cmd) (string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("keeper: %w", err)
	}
	defer r.Close()
	cmd := spawn()
	cmd.ExtraFiles = []*os.File{w}
	err = cmd.Start()
	w.Close() // the keeper holds the write end: EOF when it is gone
	if err != nil {
		return "", fmt.Errorf("start the keeper: %w", err)
	}
	// The command starts the keeper and exits at once: the keeper is
	// then no child of the app this process becomes.
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("start the keeper: %w", err)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = r.SetReadDeadline(d)
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == KeeperReady, line == KeeperRunning:
		return line, nil
	case strings.HasPrefix(line, "error: "):
		return "", errors.New(strings.TrimPrefix(line, "error: "))
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "", fmt.Errorf("the keeper was not ready within %s", keeperStartTimeout)
	}
	return "", errors.New("the keeper exited before it was ready")
}

// SpawnKeeper starts cmd, the keeper proper, detached: in a session of its
// own, stdin and stdout /dev/null, stderr to stderr, ready as its fd 3.
// It does not wait for it: the caller exits, so that the keeper is
// reparented to the session's reaper.
func SpawnKeeper(cmd *exec.Cmd, ready, stderr *os.File) error {
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, stderr
	cmd.ExtraFiles = []*os.File{ready}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the keeper: %w", err)
	}
	return cmd.Process.Release()
}

// KeeperLog opens the keeper's log file beside its socket,
// keep-BUS.log in busmedic's runtime directory, for appending; a log over
// 1 MiB is started afresh.
func KeeperLog(socket string) (*os.File, error) {
	path := strings.TrimSuffix(socket, ".sock") + ".log"
	if st, err := os.Stat(path); err == nil && st.Size() > 1<<20 {
		_ = os.Truncate(path, 0)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("keeper log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("keeper log: %w", err)
	}
	return f, nil
}
