package keep_test

// The harness of the keeper's end-to-end tests and benchmark: fixture
// processes read line by line, the real bus seen from the test, and the
// three paths an app can take to the bus (direct, xdg-dbus-proxy, the
// keeper).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/keep"
	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// waitLimit bounds every wait of these tests: a wait that fails says what
// it waited for instead of hanging the run.
const waitLimit = 20 * time.Second

// python is the system's Python, which has the Debian packages' gi and
// PyQt5 modules; a python3 earlier on PATH (pyenv) may have neither.
const python = "/usr/bin/python3"

// need fails the test unless program is installed, naming the Debian
// package that has it (scripts/ensure-deps test installs them all).
func need(t testing.TB, program, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		t.Fatalf("%s not found (%v); install it: apt-get install -y %s (scripts/ensure-deps test)", program, err, pkg)
	}
	return path
}

// needPython fails the test unless the system Python imports module.
func needPython(t testing.TB, module, pkg string) {
	t.Helper()
	need(t, python, "python3")
	if out, err := exec.Command(python, "-c", "import "+module).CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import %s (%v: %s); install it: apt-get install -y %s (scripts/ensure-deps test)",
			python, module, err, bytes.TrimSpace(out), pkg)
	}
}

// appEnv is the environment of a child whose session bus is addr, the way
// busmedic keep starts an app: nothing else names a bus.
func appEnv(addr string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DBUS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "DBUS_SESSION_BUS_ADDRESS="+addr), extra...)
}

// lockedBuffer is a bytes.Buffer that exec's copying goroutine and the
// test may use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a fixture program the test started. It says what it does on
// stdout, one line per event, and the test waits for those lines.
type proc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout, closed at its end
	exited chan struct{}
	stderr lockedBuffer

	mu   sync.Mutex
	seen []string // every line read so far, for failure messages
}

// startProc starts name with args and env, killed when the test ends.
func startProc(t testing.TB, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	// The fixtures are the test's children and die with it: the test
	// binary's cleanup cannot run after a panic or a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{t: t, name: filepath.Base(name), cmd: cmd, lines: make(chan string, 4096), exited: make(chan struct{})}
	cmd.Stderr = &p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		// Wait only after stdout's end: Wait closes the pipe, and a
		// last line not yet read would be lost.
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// PID is the fixture's process id.
func (p *proc) PID() int { return p.cmd.Process.Pid }

// Alive reports whether the fixture is still running.
func (p *proc) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Stderr is what the fixture wrote to stderr so far.
func (p *proc) Stderr() string { return p.stderr.String() }

// status describes the fixture for a failure message.
func (p *proc) status() string {
	p.mu.Lock()
	seen := strings.Join(p.seen, "\n  ")
	p.mu.Unlock()
	state := "running"
	if !p.Alive() {
		state = p.cmd.ProcessState.String()
	}
	return fmt.Sprintf("%s (pid %d, %s)\nstdout:\n  %s\nstderr:\n%s", p.name, p.PID(), state, seen, p.Stderr())
}

// Expect reads the fixture's lines until one starts with prefix and
// returns it. It fails the test if the fixture ends first or no such
// line comes within waitLimit. Lines before it are skipped: they are
// other events, and an expected line that came too early is skipped too,
// which makes an order of Expects a check of the order of events.
func (p *proc) Expect(prefix string) string {
	p.t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.exited
				p.t.Fatalf("%s ended before saying %q: %s", p.name, prefix, p.status())
			}
			p.mu.Lock()
			p.seen = append(p.seen, l)
			p.mu.Unlock()
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timer.C:
			p.t.Fatalf("%s did not say %q within %s: %s", p.name, prefix, waitLimit, p.status())
		}
	}
}

// Ask sends a command line to the fixture and returns its answer, the
// first line that starts with one of prefixes.
func (p *proc) Ask(command string, prefixes ...string) string {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, command+"\n"); err != nil {
		p.t.Fatalf("%s: send %q: %v: %s", p.name, command, err, p.status())
	}
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.exited
				p.t.Fatalf("%s ended before answering %q: %s", p.name, command, p.status())
			}
			p.mu.Lock()
			p.seen = append(p.seen, l)
			p.mu.Unlock()
			for _, prefix := range prefixes {
				if strings.HasPrefix(l, prefix) {
					return l
				}
			}
		case <-timer.C:
			p.t.Fatalf("%s did not answer %q within %s: %s", p.name, command, waitLimit, p.status())
		}
	}
}

// WaitExit waits for the fixture to exit and fails the test if it does
// not within waitLimit.
func (p *proc) WaitExit() {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(waitLimit):
		p.t.Fatalf("%s still runs %s after its bus went away: %s", p.name, waitLimit, p.status())
	}
}

// poll checks cond every 10 ms until it holds and reports whether it did
// within waitLimit. It is for conditions that have no event to wait on (a
// goroutine count, what a Qt app says when asked); everything else waits
// on the event.
func poll(cond func() bool) bool {
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			return cond()
		}
	}
	return true
}

// restart stops the real bus with sig and starts it again at the same
// address: SIGTERM as a package upgrade does, SIGKILL as a crash does.
func restart(t testing.TB, bus *bustest.Bus, sig syscall.Signal) {
	t.Helper()
	switch sig {
	case syscall.SIGTERM:
		bus.Stop()
	case syscall.SIGKILL:
		bus.Kill()
	default:
		t.Fatalf("restart with %v: only SIGTERM and SIGKILL", sig)
	}
	bus.Start()
}

// restartSignals are the two ways a bus goes away that every test goes through.
var restartSignals = []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}

// realBus is the test's own view of the real bus (never through the
// keeper). Its connection dies with each daemon, so Conn dials again.
type realBus struct {
	t    testing.TB
	bus  *bustest.Bus
	mu   sync.Mutex
	conn *dbus.Conn
}

func newRealBus(t testing.TB, bus *bustest.Bus) *realBus {
	r := &realBus{t: t, bus: bus}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.conn != nil {
			r.conn.Close()
		}
	})
	return r
}

// Conn returns a connection to the running daemon.
func (r *realBus) Conn() *dbus.Conn {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil && r.conn.Connected() {
		return r.conn
	}
	if r.conn != nil {
		r.conn.Close()
	}
	c, err := dbus.Connect(r.bus.Address())
	if err != nil {
		r.t.Fatalf("connect to the real bus: %v", err)
	}
	r.conn = c
	return c
}

// callBus calls a method of the bus itself with the wait limit.
func callBus(c *dbus.Conn, method string, out any, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return c.BusObject().CallWithContext(ctx, "org.freedesktop.DBus."+method, 0, args...).Store(out)
}

// WaitOwner waits until name has an owner on the real bus and returns it.
// It subscribes to NameOwnerChanged before it asks, so an owner that comes
// between the two is not missed: an event, not a poll.
func (r *realBus) WaitOwner(name string) string {
	r.t.Helper()
	c := r.Conn()
	rule := []dbus.MatchOption{dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, name)}
	if err := c.AddMatchSignal(rule...); err != nil {
		r.t.Fatalf("AddMatch NameOwnerChanged %s: %v", name, err)
	}
	defer c.RemoveMatchSignal(rule...)
	ch := make(chan *dbus.Signal, 16)
	c.Signal(ch)
	defer c.RemoveSignal(ch)
	var owner string
	if err := callBus(c, "GetNameOwner", &owner, name); err == nil {
		return owner
	}
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for {
		select {
		case s, ok := <-ch:
			if !ok {
				r.t.Fatalf("the real bus went away while waiting for %s", name)
			}
			if s.Name == "org.freedesktop.DBus.NameOwnerChanged" && len(s.Body) == 3 &&
				s.Body[0] == name && s.Body[2] != "" {
				return s.Body[2].(string)
			}
		case <-timer.C:
			r.t.Fatalf("%s has no owner on the real bus after %s", name, waitLimit)
		}
	}
}

// PeerPID is the pid the real bus reports for a connection.
func (r *realBus) PeerPID(unique string) int {
	r.t.Helper()
	var pid uint32
	if err := callBus(r.Conn(), "GetConnectionUnixProcessID", &pid, unique); err != nil {
		r.t.Fatalf("GetConnectionUnixProcessID %s: %v", unique, err)
	}
	return int(pid)
}

// Call calls org.example.Keep.METHOD on name's /org/example/Keep from the
// real bus and stores the answer in out.
func (r *realBus) Call(name, method string, out any, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	call := r.Conn().Object(name, "/org/example/Keep").CallWithContext(ctx, "org.example.Keep."+method, 0, args...)
	if out == nil {
		return call.Err
	}
	return call.Store(out)
}

// path is a way for an app to reach the bus: it returns the address to
// give the app and the pid the bus will see for the app's connection (0:
// the app's own).
type path struct {
	name  string
	start func(t testing.TB, bus *bustest.Bus) (addr string, pid int)
}

var (
	direct   = path{"direct", func(t testing.TB, bus *bustest.Bus) (string, int) { return bus.Address(), 0 }}
	xdgProxy = path{"xdg-dbus-proxy", startXDGProxy}
)

// shortDir is a temporary directory with a path short enough for a
// socket (107 bytes; t.TempDir has the test's name in it).
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "keep")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startXDGProxy runs xdg-dbus-proxy, the proxy flatpak puts between an
// app and the bus, unfiltered, until the test ends. It says it is ready by
// writing to the --fd pipe, and ends when that pipe closes.
func startXDGProxy(t testing.TB, bus *bustest.Bus) (string, int) {
	t.Helper()
	bin := need(t, "xdg-dbus-proxy", "xdg-dbus-proxy")
	sock := filepath.Join(shortDir(t), "proxy")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--fd=3", bus.Address(), sock)
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start xdg-dbus-proxy: %v", err)
	}
	w.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		r.Close()
		cmd.Process.Kill()
		<-exited
	})
	ready := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := r.Read(b[:])
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("xdg-dbus-proxy did not get ready: %v: %s", err, stderr.String())
		}
	case <-time.After(waitLimit):
		t.Fatalf("xdg-dbus-proxy not ready within %s: %s", waitLimit, stderr.String())
	}
	return "unix:path=" + sock, cmd.Process.Pid
}

// keeper is a keep.Keeper serving in the test process.
type keeper struct {
	*keep.Keeper
	addr string
	stop func() // ends Serve and waits for it; the test's cleanup calls it too

	mu      sync.Mutex
	last    control.KeptReport
	changed chan struct{} // closed at the next report
	held    bool          // Hold: the bus's address is not given out
}

// errHeld is what the keeper is told while the test holds it back.
var errHeld = errors.New("keeptest: held back by the test")

// Hold keeps the keeper from reconnecting (its Config.Address fails) until
// Release, so that a test can do something on a new bus first.
func (k *keeper) Hold() { k.mu.Lock(); k.held = true; k.mu.Unlock() }

// Release lets the keeper reconnect.
func (k *keeper) Release() { k.mu.Lock(); k.held = false; k.mu.Unlock() }

func (k *keeper) address(bus *bustest.Bus) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.held {
		return "", errHeld
	}
	return bus.Address(), nil
}

// keeperLogger is the keeper's logger in tests: silent, unless
// BUSMEDIC_KEEP_LOG is set, to read the keeper's account of a failure.
func keeperLogger() *slog.Logger {
	if os.Getenv("BUSMEDIC_KEEP_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startKeeper serves a keeper for bus until the test ends (or stop). The
// bus sees the test's pid for the kept connections.
func startKeeper(t testing.TB, bus *bustest.Bus) *keeper {
	t.Helper()
	sock := filepath.Join(shortDir(t), "keep.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	tk := &keeper{addr: "unix:path=" + sock, changed: make(chan struct{})}
	tk.Keeper = keep.New(keep.Config{
		Bus:     "session",
		Address: func() (string, error) { return tk.address(bus) },
		Logger:  keeperLogger(),
		Report:  tk.report,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Serve(ctx, l) }()
	var once sync.Once
	tk.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("keeper: Serve: %v", err)
				}
			case <-time.After(waitLimit):
				t.Errorf("keeper: Serve did not return within %s of its context's end", waitLimit)
			}
		})
	}
	t.Cleanup(tk.stop)
	return tk
}

// report is the keeper's Config.Report: it keeps the last report and
// wakes those who wait for one.
func (k *keeper) report(r control.KeptReport) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.last = r
	close(k.changed)
	k.changed = make(chan struct{})
}

// WaitReport waits for a report that satisfies ok (the last one, or one
// to come) and returns it.
func (k *keeper) WaitReport(t testing.TB, what string, ok func(control.KeptReport) bool) control.KeptReport {
	t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for {
		k.mu.Lock()
		last, changed := k.last, k.changed
		k.mu.Unlock()
		if ok(last) {
			return last
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("the keeper did not report %s within %s; its last report: %+v", what, waitLimit, last)
		}
	}
}

// WaitRestarts waits until the keeper is up and reports every kept app
// kept through n restarts: its replays are done, and what the apps were
// told (NameOwnerChanged, NameLost) is on its way to them.
func (k *keeper) WaitRestarts(t testing.TB, n int) {
	t.Helper()
	k.WaitReport(t, fmt.Sprintf("every app kept through %d restarts", n), func(r control.KeptReport) bool {
		if !r.Up || len(r.Apps) == 0 {
			return false
		}
		for _, a := range r.Apps {
			if a.Restarts < n {
				return false
			}
		}
		return true
	})
}

// helloMessage is the Hello call every client sends first, serial 1,
// little-endian, as libdbus writes it.
const helloMessage = "l\x01\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00n\x00\x00\x00" +
	"\x01\x01o\x00\x15\x00\x00\x00/org/freedesktop/DBus\x00\x00\x00" +
	"\x06\x01s\x00\x14\x00\x00\x00org.freedesktop.DBus\x00\x00\x00\x00" +
	"\x02\x01s\x00\x14\x00\x00\x00org.freedesktop.DBus\x00\x00\x00\x00" +
	"\x03\x01s\x00\x05\x00\x00\x00Hello\x00\x00\x00"

// TestKeepHelloWithBegin: a client may send BEGIN and its Hello in one
// write (libdbus does when it is quick, sd-bus always): the keeper must
// answer the Hello that came in the same read as BEGIN. Found with
// dbus-send and dbus-test-tool echo, which hung at connect through the
// keeper ("Did not receive a reply" after 25 s) unless slowed by strace.
func TestKeepHelloWithBegin(t *testing.T) {
	bus := bustest.New(t)
	k := startKeeper(t, bus)
	c, err := net.Dial("unix", strings.TrimPrefix(k.addr, "unix:path="))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	auth := "\x00AUTH EXTERNAL " + hex.EncodeToString([]byte(strconv.Itoa(os.Getuid()))) + "\r\nBEGIN\r\n"
	if _, err := io.WriteString(c, auth+helloMessage); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "OK ") {
		t.Fatalf("authentication answered %q, %v", line, err)
	}
	// The reply to Hello: a METHOD_RETURN (type 2) with reply serial 1.
	var fixed [16]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		t.Fatalf("no answer to a Hello sent with BEGIN in one write: %v", err)
	}
	if fixed[1] != 2 {
		t.Errorf("the first message after BEGIN+Hello has type %d, want 2 (the Hello's reply)", fixed[1])
	}
}
