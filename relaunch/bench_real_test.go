package relaunch

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

// BenchmarkRecoveryReal is the recovery benchmark (bench_test.go) for real
// programs from Debian that exit with their bus: dunst, and dunst with
// xfce4-panel (one panel with its notification area, the systray plugin,
// which runs in a wrapper process of its own), on an Xvfb display.
//
// The bus is the one of test/e2e/session.sh, not bustest.Stock(): the
// distribution's session configuration would let the bus start dunst
// itself (Debian ships org.knopwob.dunst.service), so the only service it
// can start here is xfconfd, the panel's settings store, as in every Xfce
// session. The panel's names are back (org.xfce.Panel) well before its
// notification area: with no window manager on Xvfb, the panel waits 5 s
// for one before it loads its plugins. ms/floor-ready and
// ms/recovery-ready time that too (org.kde.StatusNotifierWatcher, from the
// plugin).
func BenchmarkRecoveryReal(b *testing.B) {
	xfconfd := ""
	if m, _ := filepath.Glob("/usr/lib/*/xfce4/xfconf/xfconfd"); len(m) > 0 {
		xfconfd = m[0]
	}
	for _, p := range []string{"/usr/bin/dunst", "/usr/bin/xfce4-panel", xfconfd} {
		if _, err := os.Stat(p); p == "" || err != nil {
			b.Fatalf("%q is missing (%v): run scripts/ensure-deps test", p, err)
		}
	}
	dunst := benchApp{id: "dunst", names: []string{"org.freedesktop.Notifications"}, argv: []string{"/usr/bin/dunst"}}
	panel := benchApp{id: "xfce4-panel", names: []string{"org.xfce.Panel"}, argv: []string{"/usr/bin/xfce4-panel"},
		ready: []string{"org.kde.StatusNotifierWatcher"}}
	for _, tc := range []struct {
		name string
		apps []benchApp
	}{
		{"dunst", []benchApp{dunst}},
		{"dunst+xfce4-panel", []benchApp{dunst, panel}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			display := bustest.StartXvfb(b, 1280, 800)
			benchRestarts(b, tc.apps, func() (benchBus, []string) { return desktopBus(b, display.Name, xfconfd) })
		})
	}
}

// desktopBus starts a session bus of a desktop session in miniature, as
// test/e2e/session.sh does: a home and XDG directories of its own, one
// panel with the systray plugin in xfconf, and a bus that can start
// xfconfd only. It returns the bus and the apps' environment.
func desktopBus(b *testing.B, display, xfconfd string) (benchBus, []string) {
	b.Helper()
	// A short directory: socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "bmbench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	write("services/org.xfce.Xfconf.service", "[D-BUS Service]\nName=org.xfce.Xfconf\nExec="+xfconfd+"\n")
	write("config/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml", panelXML)
	for _, d := range []string{"home", "run", "cache", "data", "state"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "XDG_") || strings.HasPrefix(k, "DBUS_") || k == "HOME" || k == "DISPLAY" ||
			k == "WAYLAND_DISPLAY" || k == "SESSION_MANAGER" || k == "BUSMEDIC_CONFIG" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "DISPLAY="+display, "HOME="+filepath.Join(dir, "home"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_RUNTIME_DIR="+filepath.Join(dir, "run"),
		"XDG_CACHE_HOME="+filepath.Join(dir, "cache"), "XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_STATE_HOME="+filepath.Join(dir, "state"))
	bus := &ownBus{t: b, dir: dir, listen: "unix:path=" + filepath.Join(dir, "bus")}
	write("bus.conf", fmt.Sprintf(desktopBusConf, bus.listen, filepath.Join(dir, "services")))
	// xfconfd, started by the bus, gets the bus's environment.
	bus.env = slices.Concat(env, []string{"DBUS_SESSION_BUS_ADDRESS=" + bus.listen})
	b.Cleanup(func() {
		if bus.Running() {
			bus.Kill()
		}
	})
	bus.Start()
	return bus, env
}

const desktopBusConf = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>%s</listen>
  <auth>EXTERNAL</auth>
  <servicedir>%s</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    <allow user="*"/>
  </policy>
</busconfig>
`

// panelXML is one panel with a notification area (the systray plugin,
// which is also the StatusNotifierWatcher), as in test/e2e/session.sh.
const panelXML = `<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="length" type="uint" value="100"/>
      <property name="size" type="uint" value="32"/>
      <property name="plugin-ids" type="array"><value type="int" value="1"/></property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="systray"/>
  </property>
</channel>
`

// ownBus is a dbus-daemon with a configuration file of the benchmark's,
// started, stopped and killed as bustest.Bus does: bustest can neither
// add a service directory to its configuration nor set the daemon's
// environment, which the services it starts inherit.
type ownBus struct {
	t      testing.TB
	dir    string
	listen string
	env    []string

	mu      sync.Mutex
	address string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// Start starts the daemon and returns once it accepts connections and
// answers from its main loop.
func (o *ownBus) Start() {
	o.t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cmd != nil {
		o.t.Fatal("ownBus: already running")
	}
	r, w, err := os.Pipe()
	if err != nil {
		o.t.Fatal(err)
	}
	defer r.Close()
	// A file, not a pipe, for its errors: the services it starts inherit
	// it, and a pipe would make Wait wait for them.
	logf, err := os.OpenFile(filepath.Join(o.dir, "bus.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		w.Close()
		o.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("dbus-daemon", "--config-file="+filepath.Join(o.dir, "bus.conf"),
		"--nofork", "--nopidfile", "--nosyslog", "--print-address=1")
	cmd.Env, cmd.Stdout, cmd.Stderr = o.env, w, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	w.Close()
	if err != nil {
		o.t.Fatalf("ownBus: %v (install: %s)", err, bustest.InstallHint)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	var printed string
	select {
	case printed = <-line:
	case <-timer.C:
	}
	if printed == "" {
		cmd.Process.Kill()
		<-exited
		logs, _ := os.ReadFile(filepath.Join(o.dir, "bus.log"))
		o.t.Fatalf("ownBus: dbus-daemon printed no address: %s", logs)
	}
	o.address = watcher.WithoutGUID(printed)
	// It prints its address before its main loop runs: a SIGTERM in
	// between would leave the socket file behind.
	if err := authOK(o.address); err != nil {
		cmd.Process.Kill()
		<-exited
		o.t.Fatalf("ownBus: dbus-daemon does not answer: %v", err)
	}
	o.cmd, o.exited = cmd, exited
}

func (o *ownBus) Stop() { o.t.Helper(); o.stopWith(syscall.SIGTERM) }
func (o *ownBus) Kill() { o.t.Helper(); o.stopWith(syscall.SIGKILL) }

func (o *ownBus) stopWith(sig syscall.Signal) {
	o.t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cmd == nil {
		o.t.Fatalf("ownBus: %v: not running", sig)
	}
	o.cmd.Process.Signal(sig)
	select {
	case <-o.exited:
	case <-time.After(waitLimit):
		o.t.Fatalf("ownBus: dbus-daemon still runs %s after %v", waitLimit, sig)
	}
	o.cmd, o.exited = nil, nil
}

func (o *ownBus) Running() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cmd != nil
}

func (o *ownBus) Address() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.address == "" {
		return o.listen
	}
	return o.address
}

// authOK connects to the unix:path bus at address and waits for the answer
// to the first line of the authentication, without becoming a peer.
func authOK(address string) error {
	path := ""
	for part := range strings.SplitSeq(strings.TrimPrefix(address, "unix:"), ",") {
		if v, ok := strings.CutPrefix(part, "path="); ok {
			path = v
		}
	}
	c, err := net.DialTimeout("unix", path, waitLimit)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := io.WriteString(c, "\x00AUTH EXTERNAL "+hex.EncodeToString([]byte(strconv.Itoa(os.Getuid())))+"\r\n"); err != nil {
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

func BenchmarkZZSteps(b *testing.B) {
	bus := bustest.New(b, bustest.Stock())
	var phases [10]time.Duration
	names := []string{"dial+auth+hello", "AddMatch", "GetId", "ListActivatable", "GetPID", "ProcessInfo", "pipelined 4 calls", "ListNames", "dial+newconn", "auth"}
	for range b.N {
		bus.Kill()
		bus.Start()
		t := time.Now()
		lap := func(i int) { phases[i] += time.Since(t); t = time.Now() }
		nc, err := net.Dial("unix", bus.SocketPath())
		if err != nil {
			b.Fatal(err)
		}
		conn, err := dbus.DialUnix(nc.(*net.UnixConn))
		if err != nil {
			b.Fatal(err)
		}
		lap(8)
		if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Geteuid())), dbus.AuthAnonymous()}); err != nil {
			b.Fatal(err)
		}
		lap(9)
		if err := conn.Hello(); err != nil {
			b.Fatal(err)
		}
		lap(0)
		conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"))
		lap(1)
		var id string
		conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id)
		lap(2)
		var act []string
		conn.BusObject().Call("org.freedesktop.DBus.ListActivatableNames", 0).Store(&act)
		lap(3)
		var pid uint32
		conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, "org.freedesktop.DBus").Store(&pid)
		lap(4)
		watcher.ProcessInfo(int(pid))
		lap(5)
		o := conn.BusObject()
		c1 := o.Go("org.freedesktop.DBus.AddMatch", 0, nil, "type='signal',member='Foo'")
		c2 := o.Go("org.freedesktop.DBus.GetId", 0, nil)
		c3 := o.Go("org.freedesktop.DBus.ListActivatableNames", 0, nil)
		c4 := o.Go("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, nil, "org.freedesktop.DBus")
		for _, c := range []*dbus.Call{c1, c2, c3, c4} {
			<-c.Done
		}
		lap(6)
		var names []string
		conn.BusObject().Call("org.freedesktop.DBus.ListNames", 0).Store(&names)
		lap(7)
		conn.Close()
	}
	for i, n := range names {
		b.Logf("%s: %v", n, phases[i]/time.Duration(b.N))
	}
}
