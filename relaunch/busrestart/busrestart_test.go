package busrestart_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/relaunch/busrestart"
	"busmedic/relaunch/control"
	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

const deadline = 20 * time.Second

func busID(t *testing.T, address string) string {
	t.Helper()
	conn, err := dbus.Connect(address)
	if err != nil {
		t.Fatalf("connect %s: %v", address, err)
	}
	defer conn.Close()
	var id string
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestManaged(t *testing.T) {
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Fatalf("dbus-daemon not found; install it: %s", bustest.InstallHint)
	}
	addr := "unix:path=" + filepath.Join(t.TempDir(), "bus")
	m := &busrestart.Managed{Address: addr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	// Find picks the managed daemon once it runs; the restart answers only
	// when the new daemon listens.
	rctx, rcancel := context.WithTimeout(ctx, deadline)
	defer rcancel()
	select {
	case <-m.Ready():
	case <-rctx.Done():
		t.Fatal("managed bus daemon did not start")
	}
	before := busID(t, addr)
	method, err := busrestart.Finder{Address: addr, Managed: m}.Find(rctx)
	if err != nil || method != m {
		t.Fatalf("Find = %v, %v; want the managed daemon", method, err)
	}
	if err := method.Restart(rctx); err != nil {
		t.Fatal(err)
	}
	if after := busID(t, addr); after == before {
		t.Errorf("bus id %s unchanged by Restart", after)
	}

	// A crash of the daemon is followed by a new one at once.
	w, err := watcher.New(watcher.Target{Name: "managed", Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan watcher.Event, 16)
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() { w.Run(wctx, events); close(wdone) }()
	defer func() { wcancel(); <-wdone }()
	up := next(t, events, watcher.Up)
	syscall.Kill(up.Peer.PID, syscall.SIGKILL)
	if e := next(t, events, watcher.Restarted); e.OldID != up.ID {
		t.Errorf("Restarted %v, want from %s", e, up.ID)
	}
}

func next(t *testing.T, events <-chan watcher.Event, k watcher.Kind) watcher.Event {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case e := <-events:
			if e.Kind == k {
				return e
			}
		case <-timer.C:
			t.Fatalf("no %v within %s", k, deadline)
		}
	}
}

func TestNotRestartable(t *testing.T) {
	bus := bustest.New(t)
	_, err := busrestart.Finder{Address: bus.Address(), SystemdSocket: filepath.Join(t.TempDir(), "none")}.Find(t.Context())
	if !errors.Is(err, control.ErrCannotRestart) || !strings.Contains(err.Error(), "pid") || !strings.Contains(err.Error(), "--manage-session-bus") {
		t.Errorf("Find on a bus nobody manages = %v; want ErrCannotRestart naming the pid and the way out", err)
	}
	// The refusal says who started the bus in facts too: this test,
	// which runs the bus daemon as its child.
	var why *control.RestartRefusal
	if !errors.As(err, &why) {
		t.Fatalf("Find = %T, want a *control.RestartRefusal", err)
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	if why.Bus != "session" || why.PID != bus.PID() || why.StartedByPID != os.Getpid() ||
		why.StartedBy != strings.TrimSpace(string(comm)) || why.StarterExited || !strings.Contains(why.Reason, "--manage-session-bus") {
		t.Errorf("refusal = %+v; want the bus pid %d started by this process (pid %d)", why, bus.PID(), os.Getpid())
	}
}

func TestSystemd(t *testing.T) {
	bus := bustest.New(t)
	socket := filepath.Join(t.TempDir(), "private")
	sd := startSystemd(t, socket, bus)
	method, err := busrestart.Finder{Address: bus.Address(), SystemdSocket: socket}.Find(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(method.String(), "dbus.service") {
		t.Errorf("method %q, want the dbus.service unit", method)
	}
	if err := method.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case call := <-sd.calls:
		if call != "RestartUnit dbus.service replace" {
			t.Errorf("systemd got %q", call)
		}
	case <-time.After(deadline):
		t.Fatal("no RestartUnit call")
	}
}

// systemd is a stand-in user manager on a private socket: like the real
// one it speaks D-Bus directly, with no bus driver and no Hello. It puts the
// test bus's daemon in dbus.service and records the calls it gets.
type systemd struct {
	busPID uint32
	calls  chan string
}

func (s *systemd) GetUnitByPID(pid uint32) (dbus.ObjectPath, *dbus.Error) {
	if pid == s.busPID {
		return "/org/freedesktop/systemd1/unit/dbus_2eservice", nil
	}
	return "/org/freedesktop/systemd1/unit/session_2d1_2escope", nil
}

func (s *systemd) RestartUnit(name, mode string) (dbus.ObjectPath, *dbus.Error) {
	s.calls <- "RestartUnit " + name + " " + mode
	return "/org/freedesktop/systemd1/job/1", nil
}

func startSystemd(t *testing.T, socket string, bus *bustest.Bus) *systemd {
	t.Helper()
	sd := &systemd{busPID: uint32(bus.PID()), calls: make(chan string, 8)}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*dbus.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conn, err := serverConn(nc)
			if err != nil {
				t.Errorf("stand-in systemd: %v", err)
				nc.Close()
				continue
			}
			conn.Export(sd, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	})
	return sd
}

const guid = "0123456789abcdef0123456789abcdef"

// serverConn answers a client's authentication, then hands the connection
// to godbus. godbus only has the client side of the handshake, so it is
// given a stand-in server for it, and the real socket once it says BEGIN.
func serverConn(nc net.Conn) (*dbus.Conn, error) {
	r := bufio.NewReader(nc)
	if _, err := r.ReadByte(); err != nil { // the nul byte
		return nil, err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "BEGIN":
			conn, err := dbus.NewConn(&handshake{Conn: nc, r: r})
			if err != nil {
				return nil, err
			}
			if err := conn.Auth([]dbus.Auth{dbus.AuthExternal("0")}); err != nil {
				return nil, err
			}
			return conn, nil
		case strings.HasPrefix(line, "AUTH EXTERNAL"):
			io.WriteString(nc, "OK "+guid+"\r\n")
		case strings.HasPrefix(line, "NEGOTIATE_UNIX_FD"):
			io.WriteString(nc, "AGREE_UNIX_FD\r\n")
		default:
			io.WriteString(nc, "REJECTED EXTERNAL\r\n")
		}
	}
}

// handshake answers godbus's client handshake itself, then passes reads and
// writes through to the connection.
type handshake struct {
	net.Conn
	r       *bufio.Reader // holds what the client sent after BEGIN
	mu      sync.Mutex
	begun   bool
	answers []string
}

func (h *handshake) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.begun {
		return h.Conn.Write(p)
	}
	for line := range strings.SplitSeq(string(p), "\r\n") {
		switch {
		case line == "AUTH":
			h.answers = append(h.answers, "REJECTED EXTERNAL\r\n")
		case strings.HasPrefix(line, "AUTH "):
			h.answers = append(h.answers, "OK "+guid+"\r\n")
		case line == "BEGIN":
			h.begun = true
		}
	}
	return len(p), nil
}

func (h *handshake) Read(p []byte) (int, error) {
	h.mu.Lock()
	if len(h.answers) > 0 {
		n := copy(p, h.answers[0])
		h.answers[0] = h.answers[0][n:]
		if h.answers[0] == "" {
			h.answers = h.answers[1:]
		}
		h.mu.Unlock()
		return n, nil
	}
	h.mu.Unlock()
	return h.r.Read(p)
}

// A managed bus daemon that does not start is tried again, with pauses,
// until it does: busmedic does not give the session's bus up. The bus
// daemon here is a script that fails its first six starts, then runs
// dbus-daemon.
func TestManagedKeepsTrying(t *testing.T) {
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("dbus-daemon not found; install it: %s", bustest.InstallHint)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "flaky-dbus-daemon")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
n=$(cat "$0.count" 2>/dev/null || echo 0)
echo $((n + 1)) > "$0.count"
[ "$n" -ge 6 ] || exit 1
exec `+daemon+` "$@"
`), 0o700); err != nil {
		t.Fatal(err)
	}
	addr := "unix:path=" + filepath.Join(dir, "bus")
	m := &busrestart.Managed{Address: addr, Binary: script}
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	ran := make(chan struct{})
	go func() {
		runErr = m.Run(ctx)
		close(ran)
	}()
	t.Cleanup(func() {
		cancel()
		<-ran
	})
	select {
	case <-m.Ready():
	case <-ran:
		t.Fatalf("Run gave up: %v", runErr)
	case <-time.After(deadline):
		t.Fatalf("the bus daemon did not start within %s", deadline)
	}
	busID(t, addr) // it answers
}
