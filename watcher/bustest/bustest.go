// Package bustest gives a test a real dbus-daemon of its own in one line, in
// the manner of net/http/httptest: New starts it on a temporary socket and
// registers its cleanup, and the test can stop it with SIGTERM, kill it with
// SIGKILL (leaving the socket file behind, as a crash does) and start it again
// at the same address.
package bustest

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
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
)

// InstallHint is the command that installs what this package needs.
const InstallHint = "apt-get install -y dbus-daemon dbus-bin"

// stockConfig is the session configuration dbus-daemon ships.
const stockConfig = "/usr/share/dbus-1/session.conf"

// waitLimit bounds every wait on the daemon: a test that hangs tells why.
const waitLimit = 20 * time.Second

// Bus is a dbus-daemon run by a test.
type Bus struct {
	t         testing.TB
	dir       string
	transport string
	busType   string
	stock     bool   // Stock: the distribution's session.conf
	services  string // ServiceDir
	binary    string
	copied    bool // binary is a private copy of original (CopiedBinary)
	original  string

	mu      sync.Mutex
	listen  string // the address the daemon is told to listen on
	address string // the address clients use, without guid
	cmd     *exec.Cmd
	exited  chan struct{}
}

// stderrPath is the file the daemon's stderr goes to, for every start.
func (b *Bus) stderrPath() string { return filepath.Join(b.dir, "dbus-daemon.stderr") }

// daemonStderr returns what the daemons of this bus wrote to stderr, for
// the test's failure message.
func (b *Bus) daemonStderr() string {
	out, err := os.ReadFile(b.stderrPath())
	if err != nil {
		return err.Error()
	}
	return string(out)
}

// Option changes how New starts the bus.
type Option func(*Bus)

// Abstract makes the bus listen on a Linux abstract socket (no socket file).
func Abstract() Option { return func(b *Bus) { b.transport = "abstract" } }

// TCP makes the bus listen on a loopback TCP port, with anonymous auth.
func TCP() Option { return func(b *Bus) { b.transport = "tcp" } }

// SystemType runs the bus with <type>system</type>, as a stand-in system bus.
func SystemType() Option { return func(b *Bus) { b.busType = "system" } }

// Stock runs the bus with the distribution's own session configuration
// (/usr/share/dbus-1/session.conf, with the services it can activate),
// listening at the test's address: the bus as a desktop session has it.
// It suits path and abstract buses of the session type.
func Stock() Option { return func(b *Bus) { b.stock = true } }

// ServiceDir lets the bus start services on demand from the D-Bus service
// files in dir (with the test configuration; Stock reads the system's).
func ServiceDir(dir string) Option { return func(b *Bus) { b.services = dir } }

// CopiedBinary runs a private copy of dbus-daemon, which Update replaces as
// a package upgrade would.
func CopiedBinary() Option { return func(b *Bus) { b.copied = true } }

// New starts a dbus-daemon for the test and stops it when the test ends.
// If dbus-daemon is not installed the test fails with the install command.
func New(t testing.TB, opts ...Option) *Bus {
	t.Helper()
	b := &Bus{t: t, transport: "path", busType: "session"}
	for _, o := range opts {
		o(b)
	}
	if b.stock && (b.transport == "tcp" || b.busType != "session") {
		t.Fatal("bustest: Stock is the session configuration, for unix sockets only")
	}
	path, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("bustest: dbus-daemon not found (%v); install it: %s", err, InstallHint)
	}
	b.binary = path
	// A short directory: socket paths are limited to 107 bytes, and test
	// names make t.TempDir long.
	dir, err := os.MkdirTemp("", "bustest")
	if err != nil {
		t.Fatalf("bustest: %v", err)
	}
	b.dir = dir
	t.Cleanup(func() {
		b.signal(syscall.SIGKILL)
		os.RemoveAll(dir)
	})
	if b.copied {
		b.original = path
		b.binary = filepath.Join(dir, "bin", "dbus-daemon")
		if err := os.Mkdir(filepath.Dir(b.binary), 0o755); err != nil {
			t.Fatalf("bustest: %v", err)
		}
		b.Update()
	}
	switch b.transport {
	case "path":
		b.listen = "unix:path=" + filepath.Join(dir, "bus")
	case "abstract":
		b.listen = "unix:abstract=" + strings.TrimPrefix(dir, "/")
	case "tcp":
		b.listen = "tcp:host=127.0.0.1,port=0"
	}
	b.Start()
	return b
}

// Binary returns the dbus-daemon executable the bus runs.
func (b *Bus) Binary() string { return b.binary }

// Update installs dbus-daemon again over the copy a CopiedBinary bus runs,
// as dpkg does: it writes the new file beside the old one and renames it
// over it, so the running daemon's executable is a new inode. The running
// daemon goes on; Restart runs the new file.
func (b *Bus) Update() {
	b.t.Helper()
	if !b.copied {
		b.t.Fatal("bustest: Update needs a bus started with CopiedBinary")
	}
	fail := func(err error) { b.t.Fatalf("bustest: update %s: %v", b.binary, err) }
	in, err := os.Open(b.original)
	if err != nil {
		fail(err)
	}
	defer in.Close()
	tmp := b.binary + ".dpkg-new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		fail(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		fail(err)
	}
	if err := out.Close(); err != nil {
		fail(err)
	}
	if err := os.Rename(tmp, b.binary); err != nil {
		fail(err)
	}
}

// Address returns the bus address; it stays the same across restarts.
func (b *Bus) Address() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.address
}

// SocketPath returns the socket file of a unix:path bus, or "".
func (b *Bus) SocketPath() string {
	if b.transport != "path" {
		return ""
	}
	return filepath.Join(b.dir, "bus")
}

// Dir returns a temporary directory that lives as long as the bus.
func (b *Bus) Dir() string { return b.dir }

// PID returns the daemon's pid, or 0 while it is not running.
func (b *Bus) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// Env returns the environment of the test process with this bus as both the
// session and the system bus, for child processes.
func (b *Bus) Env() []string {
	return append(os.Environ(),
		"DBUS_SESSION_BUS_ADDRESS="+b.Address(),
		"DBUS_SYSTEM_BUS_ADDRESS="+b.Address())
}

// Start starts the daemon at the bus's address and returns once it accepts
// connections. It fails the test if the daemon is already running.
func (b *Bus) Start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		b.t.Fatalf("bustest: Start: daemon already running (pid %d)", b.cmd.Process.Pid)
	}
	config := filepath.Join(b.dir, "bus.conf")
	if err := os.WriteFile(config, []byte(b.config()), 0o600); err != nil {
		b.t.Fatalf("bustest: %v", err)
	}
	args := []string{"--config-file=" + config}
	if b.stock {
		args = []string{"--config-file=" + stockConfig, "--address=" + b.listen}
	}
	cmd := exec.Command(b.binary, append(args, "--nofork", "--nopidfile", "--nosyslog", "--print-address=1")...)
	// The services the daemon starts on demand inherit its stdout and
	// stderr, and may outlive it (a deaf one stays alive). So both are
	// files, not pipes that exec copies from: Wait returns when the
	// daemon exits, not when its last service does.
	stderr, err := os.OpenFile(b.stderrPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.t.Fatalf("bustest: %v", err)
	}
	defer stderr.Close() // the daemon has its own copy
	out, w, err := os.Pipe()
	if err != nil {
		b.t.Fatalf("bustest: %v", err)
	}
	cmd.Stdout, cmd.Stderr = w, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	w.Close()
	if err != nil {
		out.Close()
		b.t.Fatalf("bustest: start %s: %v", b.binary, err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		// --print-address writes once the daemon listens. Reading on to
		// EOF, when the daemon and every service it started have exited,
		// keeps the pipe open for the services, which may print.
		defer out.Close()
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() {
		}
	}()
	go func() {
		cmd.Wait()
		close(exited)
	}()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	var printed string
	select {
	case l, ok := <-lines:
		if !ok {
			<-exited
			b.t.Fatalf("bustest: dbus-daemon exited at start: %s", b.daemonStderr())
		}
		printed = l
	case <-timer.C:
		cmd.Process.Kill()
		b.t.Fatalf("bustest: dbus-daemon did not print its address within %s: %s", waitLimit, b.daemonStderr())
	}
	b.cmd, b.exited = cmd, exited
	b.address = stripGUID(printed)
	if b.transport == "tcp" {
		// Later starts must use the same port.
		b.listen = strings.Join(strings.Split(b.address, ",")[:2], ",")
		b.address = b.listen
	}
	// dbus-daemon prints its address before it installs its SIGTERM
	// handler and runs its main loop; a SIGTERM in between would kill it
	// without its cleanup (the socket file would stay). The first answer
	// to a handshake comes from the main loop.
	if err := handshake(b.address); err != nil {
		cmd.Process.Kill()
		<-exited
		b.cmd, b.exited = nil, nil
		b.t.Fatalf("bustest: dbus-daemon does not answer: %v: %s", err, b.daemonStderr())
	}
}

// handshake connects to the bus and waits for the answer to the first line
// of the authentication, without becoming a peer: no NameOwnerChanged is
// seen by the test.
func handshake(address string) error {
	network, addr := "unix", ""
	for part := range strings.SplitSeq(strings.SplitN(address, ":", 2)[1], ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "path":
			addr = v
		case "abstract":
			addr = "@" + v
		case "host":
			network, addr = "tcp", v+addr
		case "port":
			addr = addr + ":" + v
		}
	}
	c, err := net.DialTimeout(network, addr, waitLimit)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	mech := "EXTERNAL " + hex.EncodeToString([]byte(strconv.Itoa(os.Getuid())))
	if network == "tcp" {
		mech = "ANONYMOUS"
	}
	if _, err := io.WriteString(c, "\x00AUTH "+mech+"\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "OK") {
		return fmt.Errorf("handshake answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Stop ends the daemon with SIGTERM, as a package upgrade or an administrator
// does, and waits for it to exit.
func (b *Bus) Stop() {
	b.t.Helper()
	b.stopWith(syscall.SIGTERM)
}

// Kill ends the daemon with SIGKILL, as a crash does: the socket file stays
// behind. It waits for the process to exit.
func (b *Bus) Kill() {
	b.t.Helper()
	b.stopWith(syscall.SIGKILL)
}

// Restart stops the daemon with SIGTERM and starts it again at the same address.
func (b *Bus) Restart() {
	b.t.Helper()
	b.Stop()
	b.Start()
}

// Running reports whether the daemon is running.
func (b *Bus) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd != nil
}

// Exited returns a channel closed when the running daemon exits by itself
// or is stopped, or nil if none is running.
func (b *Bus) Exited() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.exited
}

// Signal sends sig to the running daemon without waiting.
func (b *Bus) Signal(sig syscall.Signal) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		b.t.Fatalf("bustest: Signal: daemon not running")
	}
	b.cmd.Process.Signal(sig)
}

func (b *Bus) stopWith(sig syscall.Signal) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		b.t.Fatalf("bustest: %v: daemon not running", sig)
	}
	b.cmd.Process.Signal(sig)
	select {
	case <-b.exited:
	case <-time.After(waitLimit):
		b.t.Fatalf("bustest: dbus-daemon did not exit within %s of %v", waitLimit, sig)
	}
	b.cmd, b.exited = nil, nil
}

// signal is the cleanup path: it may run after the test has failed.
func (b *Bus) signal(sig syscall.Signal) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Signal(sig)
	<-b.exited
	b.cmd = nil
}

func (b *Bus) config() string {
	services := ""
	if b.services != "" {
		services = "<servicedir>" + b.services + "</servicedir>"
	}
	auth := "<auth>EXTERNAL</auth>"
	if b.transport == "tcp" {
		auth = "<auth>ANONYMOUS</auth><allow_anonymous/>"
	}
	return fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>%s</type>
  <listen>%s</listen>
  %s
  %s
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    <allow user="*"/>
  </policy>
</busconfig>
`, b.busType, b.listen, auth, services)
}

// stripGUID is watcher.WithoutGUID for one entry; bustest cannot import
// watcher, whose own tests use bustest.
func stripGUID(addr string) string {
	var keep []string
	for part := range strings.SplitSeq(addr, ",") {
		if !strings.HasPrefix(part, "guid=") {
			keep = append(keep, part)
		}
	}
	return strings.Join(keep, ",")
}
