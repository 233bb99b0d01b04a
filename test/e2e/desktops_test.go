package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// desktop is one desktop session for the scenario of TestSession and
// BenchmarkSession: its session bus, its environment and files, and its
// programs (entries of the shipped catalog), started in order as its
// session manager would.
type desktop struct {
	name string
	// stock runs the session bus with the distribution's session
	// configuration (bustest.Stock), which starts on demand every service
	// installed, as in a real session; otherwise the bus can start only
	// the services that prepare writes to ROOT/services.
	stock bool
	// env is the session's environment beyond the X display, the home and
	// the XDG directories; "{root}" stands for the session's directory.
	env map[string]string
	// prepare writes the session's files under root (its configuration
	// in root/config, service files).
	prepare func(t testing.TB, root string)
	apps    []deskApp
	// watcher is the app whose process, or a process it started, owns
	// org.kde.StatusNotifierWatcher.
	watcher string
	// host is the app that owns an org.kde.StatusNotifierHost-* name, to
	// tell that the host registered with the watcher is the new one; empty
	// when the host has no name of its own (Xfce's systray plugin is host
	// and watcher in one).
	host string
	// notifier is the app that owns org.freedesktop.Notifications; empty
	// for none.
	notifier string
}

// deskApp is a program of a desktop: a catalog entry, by id.
type deskApp struct {
	id string
	// ready are names it owns once fully up, besides its catalog names.
	ready []string
}

// desktops are the desktops of TestSession and BenchmarkSession.
//
//   - Xfce: xfce4-panel with one notification area (the systray plugin,
//     which runs in a process of its own and is the watcher and the host),
//     and dunst. Both exit with their bus. The bus can start only xfconfd,
//     the panel's settings store, as in every Xfce session: the
//     distribution's configuration would also let it start dunst itself
//     (Debian ships org.knopwob.dunst.service), racing busmedic.
//   - LXQt: lxqt-panel, LXQt's default panel, with its status notifier
//     plugin (the watcher and the host) and its tray. It stays alive but
//     deaf.
//   - KDE Plasma: kded5, whose statusnotifierwatcher module is the watcher
//     (it loads it only in a Plasma session: KDE_FULL_SESSION), then
//     plasmashell, the panel and the host, with Plasma's notification
//     server. Both stay alive but deaf. Xvfb has no OpenGL: Qt Quick
//     renders in software. The session prefers Plasma's notification
//     server over dunst's, which is installed on the test machine too
//     (the bus would start either when a name has two service files).
func desktops() []desktop {
	return []desktop{
		{
			name: "xfce",
			env: map[string]string{"XDG_CURRENT_DESKTOP": "XFCE",
				// No system-wide panel or xfconf defaults.
				"XDG_CONFIG_DIRS": "{root}/sysconfig"},
			prepare: func(t testing.TB, root string) {
				xfconfd, _ := filepath.Glob("/usr/lib/*/xfce4/xfconf/xfconfd")
				if len(xfconfd) == 0 {
					t.Fatal("xfconfd is not installed: run scripts/ensure-deps test")
				}
				writeFile(t, root, "services/org.xfce.Xfconf.service", "[D-BUS Service]\nName=org.xfce.Xfconf\nExec="+xfconfd[0]+"\n")
				writeFile(t, root, "config/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml", readFile(t, "xfce4-panel.xml"))
			},
			apps:     []deskApp{{id: "xfce4-panel", ready: []string{watcherName}}, {id: "dunst"}},
			watcher:  "xfce4-panel",
			notifier: "dunst",
		},
		{
			name:  "lxqt",
			stock: true,
			// As startlxqt sets them: the default panel is LXQt's
			// /usr/share/lxqt/panel.conf.
			env:     map[string]string{"XDG_CURRENT_DESKTOP": "LXQt", "XDG_CONFIG_DIRS": "/etc:/etc/xdg:/usr/share"},
			apps:    []deskApp{{id: "lxqt-panel"}},
			watcher: "lxqt-panel",
			host:    "lxqt-panel",
		},
		{
			name:  "plasma",
			stock: true,
			env: map[string]string{"XDG_CURRENT_DESKTOP": "KDE", "KDE_FULL_SESSION": "true", "KDE_SESSION_VERSION": "5",
				"QT_QPA_PLATFORM": "xcb", "LIBGL_ALWAYS_SOFTWARE": "1", "QT_QUICK_BACKEND": "software"},
			prepare: func(t testing.TB, root string) {
				// The user's service directory comes first.
				writeFile(t, root, "data/dbus-1/services/org.freedesktop.Notifications.service",
					readFile(t, "/usr/share/dbus-1/services/org.kde.plasma.Notifications.service"))
			},
			apps:     []deskApp{{id: "kded5"}, {id: "plasmashell", ready: []string{notifications}}},
			watcher:  "kded5",
			host:     "plasmashell",
			notifier: "plasmashell",
		},
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run scripts/ensure-deps test", err)
	}
	return string(b)
}

func writeFile(t testing.TB, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
