package relaunch

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"busmedic/watcher/bustest"
)

// BenchmarkRecoveryReal is the recovery benchmark (bench_test.go) for real
// programs from Debian that exit with their bus: dunst, and dunst with
// xfce4-panel (one panel with its notification area, the systray plugin,
// which runs in a wrapper process of its own), on an Xvfb display.
//
// The bus is the one of the Xfce session of test/e2e, not bustest.Stock(): the
// distribution's session configuration would let the bus start dunst
// itself (Debian ships org.knopwob.dunst.service), so the only service it
// can start here is xfconfd, the panel's settings store, as in every Xfce
// session (bustest.ServiceDir). The panel's names are back
// (org.xfce.Panel) well before its notification area: with no window
// manager on Xvfb, the panel waits 5 s for one before it loads its
// plugins. ms/floor-ready and ms/recovery-ready time that too
// (org.kde.StatusNotifierWatcher, from the plugin).
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
			holdDisplay(b, display.Name)
			services := desktopSession(b, display.Name, xfconfd)
			benchRestarts(b, tc.apps, func() (*bustest.Bus, []string) {
				return bustest.New(b, bustest.ServiceDir(services)), desktopEnv()
			})
		})
	}
}

// holdDisplay keeps a client connected to the X server until the
// benchmark ends, as a session's window manager is. Without one the server
// resets whenever its last client leaves (StartXvfb does not pass
// -noreset), which happens when the bus takes every app down; an app that
// connects during the reset fails ("Cannot open X11 display", and dunst
// aborts).
func holdDisplay(b *testing.B, display string) {
	b.Helper()
	num, _, _ := strings.Cut(strings.TrimPrefix(display, ":"), ".")
	c, err := net.Dial("unix", "/tmp/.X11-unix/X"+num)
	if err != nil {
		b.Fatalf("connect to X display %s: %v", display, err)
	}
	b.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitLimit))
	// The connection setup: little-endian, protocol 11.0, no
	// authorization; the first byte of the answer is 1 for success.
	if _, err := c.Write([]byte{'l', 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		b.Fatalf("X display %s: %v", display, err)
	}
	var head [8]byte
	if _, err := io.ReadFull(c, head[:]); err != nil || head[0] != 1 {
		b.Fatalf("X display %s refused the connection (%v, status %d)", display, err, head[0])
	}
	// The rest of the answer (the screens) stays unread: the server
	// does not wait for it to be read.
	c.SetDeadline(time.Time{})
}

// desktopSession makes a desktop session in miniature, as
// test/e2e's Xfce session does: a home and XDG directories of its own, with
// one panel and its systray plugin in xfconf, and a directory with the one
// service a bus may start, xfconfd. The benchmark process takes that
// environment (until it ends), so that the bus daemon, and xfconfd that it
// starts, have it too. It returns the service directory.
func desktopSession(b *testing.B, display, xfconfd string) string {
	b.Helper()
	dir := b.TempDir()
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
	panel, err := os.ReadFile(panelXML)
	if err != nil {
		b.Fatal(err)
	}
	write("config/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml", string(panel))
	for _, d := range []string{"home", "run", "cache", "data", "state"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	for k, v := range map[string]string{"DISPLAY": display, "HOME": "home",
		"XDG_CONFIG_HOME": "config", "XDG_RUNTIME_DIR": "run", "XDG_CACHE_HOME": "cache",
		"XDG_DATA_HOME": "data", "XDG_STATE_HOME": "state"} {
		if k != "DISPLAY" {
			v = filepath.Join(dir, v)
		}
		b.Setenv(k, v)
	}
	return filepath.Join(dir, "services")
}

// desktopEnv is the environment of the session's apps: the process's,
// without what a test runner's own session may have set.
func desktopEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(k, "DBUS_") || k == "WAYLAND_DISPLAY" || k == "SESSION_MANAGER" ||
			k == "XDG_SESSION_ID" || k == "BUSMEDIC_CONFIG"
	})
}

// panelXML is one panel with a notification area (the systray plugin,
// which is also the StatusNotifierWatcher), the panel of the session test.
const panelXML = "../test/e2e/xfce4-panel.xml"
