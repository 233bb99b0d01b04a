package control_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"busmedic/relaunch/control"
)

// lowFDEnv makes the test binary a helper that serves a control socket
// under a low descriptor limit (see TestMain and TestSurvivesEMFILE).
const lowFDEnv = "BUSMEDIC_CONTROL_TEST_LOWFD"

func TestMain(m *testing.M) {
	if path := os.Getenv(lowFDEnv); path != "" {
		os.Exit(lowFDServer(path))
	}
	os.Exit(m.Run())
}

// lowFDServer serves a control socket at path, with the server's own
// limits, in a process allowed only a few more descriptors than it has
// open, until SIGTERM. It prints "ready" once it listens; its log goes to
// stderr.
func lowFDServer(path string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := control.Listen(path, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Fewer than the server's cap of clients: accept runs out first.
	limit := uint64(len(open) + 8)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, newBackend()) }()
	fmt.Println("ready", limit)
	if err := <-done; err != nil {
		log.Error("Serve", "err", err)
		return 1
	}
	return 0
}

// listen starts a server at a short temporary path with limits lowered as
// l says, until the test ends. served waits for Serve to return, at most
// deadline, and returns its error.
func listen(t *testing.T, b control.Backend, l control.Limits) (srv *control.Server, served func() error) {
	t.Helper()
	dir, err := os.MkdirTemp("", "control")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srv, err = control.Listen(filepath.Join(dir, "control.sock"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	control.SetLimits(srv, l)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, b) }()
	wait := sync.OnceValue(func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(deadline):
			return errors.New("Serve did not return")
		}
	})
	var asked atomic.Bool // the test checks Serve's error itself
	t.Cleanup(func() {
		cancel()
		if err := wait(); err != nil && !asked.Load() {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, func() error { asked.Store(true); return wait() }
}

// rawConn is a client connection that sends what the test says.
type rawConn struct {
	*net.UnixConn
	r *bufio.Reader
}

func rawDial(t *testing.T, path string) rawConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return rawConn{c, bufio.NewReader(c)}
}

// next reads the server's next reply; io.EOF when it closed the connection.
func (c rawConn) next(t *testing.T) (control.Response, error) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(deadline)); err != nil {
		t.Fatal(err)
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return control.Response{}, err
	}
	var resp control.Response
	if err := json.Unmarshal(line, &resp); err != nil {
		t.Fatalf("reply %q: %v", line, err)
	}
	return resp, nil
}

// closedAfter reads replies until the server closes the connection, and
// returns the last one's error.
func (c rawConn) closedAfter(t *testing.T) string {
	t.Helper()
	last := ""
	for {
		resp, err := c.next(t)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the server did not close the connection within %s", deadline)
			}
			return last
		}
		last = resp.Error
	}
}

func TestTooManyIdleClients(t *testing.T) {
	const max = 4
	idle := time.Second
	srv, _ := listen(t, newBackend(), control.Limits{MaxClients: max, IdleTimeout: idle})

	// Clients that connect and send nothing: the first max take every
	// place (they are accepted in turn), the others are refused at once.
	var held, refused []rawConn
	for i := range 3 * max {
		c := rawDial(t, srv.Path())
		if i < max {
			held = append(held, c)
		} else {
			refused = append(refused, c)
		}
	}
	for _, c := range refused {
		if msg := c.closedAfter(t); !strings.Contains(msg, "too many control clients") {
			t.Errorf("a client over the cap got %q, want the reason it is refused", msg)
		}
	}
	// A client's request in the meantime is refused with the reason.
	if _, err := dial(t, srv.Path()).Status(t.Context()); !errors.Is(err, control.ErrTooManyClients) || !strings.Contains(err.Error(), "too many control clients") {
		t.Errorf("Status over the cap = %v, want the refusal", err)
	}
	// The idle clients are closed in time, which makes room.
	for _, c := range held {
		if msg := c.closedAfter(t); !strings.Contains(msg, "no request for") {
			t.Errorf("an idle client was told %q on closing, want why", msg)
		}
	}
	st, err := dial(t, srv.Path()).Status(t.Context())
	if err != nil || len(st.Buses) != 1 {
		t.Fatalf("Status after the idle clients were closed = %+v, %v", st, err)
	}
}

func TestWatchIsNotIdle(t *testing.T) {
	b := newBackend()
	srv, _ := listen(t, b, control.Limits{IdleTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	updates, err := dial(t, srv.Path()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func() (control.Status, bool) {
		t.Helper()
		select {
		case st, ok := <-updates:
			return st, ok
		case <-time.After(deadline):
			t.Fatal("no status update")
		}
		return control.Status{}, false
	}
	if _, ok := next(); !ok {
		t.Fatal("watch ended at once")
	}
	// An idle client that connected after the watch is closed: the watch
	// has been quiet for longer than the idle timeout by then.
	if msg := rawDial(t, srv.Path()).closedAfter(t); !strings.Contains(msg, "no request for") {
		t.Fatalf("idle client told %q", msg)
	}
	b.Pause()
	for {
		st, ok := next()
		if !ok {
			t.Fatal("the watch stream was closed as idle")
		}
		if st.Paused {
			break
		}
	}
}

func TestLongRequestLine(t *testing.T) {
	srv, _ := listen(t, newBackend(), control.Limits{})
	// A request padded to the longest line allowed is served.
	c := rawDial(t, srv.Path())
	req := `{"op":"status"}`
	if _, err := c.Write([]byte(req + strings.Repeat(" ", control.DefaultMaxLine-len(req)) + "\n")); err != nil {
		t.Fatal(err)
	}
	if resp, err := c.next(t); err != nil || !resp.OK {
		t.Fatalf("a request of %d bytes: %+v, %v", control.DefaultMaxLine, resp, err)
	}
	// One byte more gets an error reply, and the connection is closed.
	if _, err := c.Write([]byte(req + strings.Repeat(" ", control.DefaultMaxLine-len(req)+1) + "\n")); err != nil {
		t.Fatal(err)
	}
	if msg := c.closedAfter(t); !strings.Contains(msg, "longer than "+strconv.Itoa(control.DefaultMaxLine)+" bytes") {
		t.Errorf("a request of %d bytes: told %q, want that it is too long", control.DefaultMaxLine+1, msg)
	}
	// A line that never ends is cut short the same way, through the client.
	if _, err := dial(t, srv.Path()).Relaunch(t.Context(), strings.Repeat("x", 4*control.DefaultMaxLine), false); !errors.Is(err, control.ErrBadRequest) || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("Relaunch with a huge id = %v, want the line refused", err)
	}
	if _, err := dial(t, srv.Path()).Status(t.Context()); err != nil {
		t.Errorf("Status after long lines: %v", err)
	}
}

// TestBrokenSocket checks that a server whose socket fails for good returns
// the error, with the socket removed and the lock released, instead of
// staying up unreachable.
func TestBrokenSocket(t *testing.T) {
	srv, served := listen(t, newBackend(), control.Limits{})
	// A client in the middle of a watch does not hold Serve up.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	updates, err := dial(t, srv.Path()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-updates
	control.BreakListener(srv)
	if err := served(); err == nil || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve after its socket failed = %v, want the error", err)
	}
	if _, err := os.Lstat(srv.Path()); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	again, err := control.Listen(srv.Path(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Listen after the failure: %v (the lock is still held)", err)
	}
	go again.Serve(ctx, newBackend())
	if _, err := dial(t, srv.Path()).Status(ctx); err != nil {
		t.Errorf("Status from the new server: %v", err)
	}
}

// TestSurvivesEMFILE runs a server whose process may open only a few
// descriptors more than it has, has clients take them all so that accept
// fails with EMFILE, then lets them go: the server must serve again.
func TestSurvivesEMFILE(t *testing.T) {
	dir, err := os.MkdirTemp("", "control")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "control.sock")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lowFDEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	// The helper's log, watched for the failed accept.
	emfile := make(chan struct{})
	logDone := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if !seen && strings.Contains(sc.Text(), "too many open files") {
				seen = true
				close(emfile)
			}
		}
		logDone <- all.String()
	}()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			ready <- sc.Text()
		}
		close(ready)
		exited <- cmd.Wait()
	}()
	var limit int
	select {
	case line, ok := <-ready:
		if !ok || !strings.HasPrefix(line, "ready ") {
			t.Fatalf("helper did not start: %q\n%s", line, <-logDone)
		}
		limit, _ = strconv.Atoi(strings.TrimPrefix(line, "ready "))
	case <-time.After(deadline):
		t.Fatal("helper did not start")
	}

	// More clients than the helper has descriptors: accept fails.
	var conns []*net.UnixConn
	for range 2 * limit {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	select {
	case <-emfile:
	case <-time.After(deadline):
		t.Fatalf("the server's log shows no accept failing with EMFILE (limit %d, %d clients)", limit, len(conns))
	}
	for _, c := range conns {
		c.Close()
	}
	// The socket is still there, and answers once descriptors are free.
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	c, err := control.Dial(ctx, path)
	if err != nil {
		t.Fatalf("after EMFILE: %v", err)
	}
	defer c.Close()
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("Status after EMFILE: %v", err)
	}
	c.Close()

	// And it stops cleanly, removing the socket.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("helper: %v\n%s", err, <-logDone)
		}
	case <-time.After(deadline):
		t.Fatal("helper did not stop on SIGTERM")
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	if log := <-logDone; !strings.Contains(log, "accepting clients again") {
		t.Errorf("helper log:\n%s", log)
	}
}
