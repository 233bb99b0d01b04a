package tray

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"busmedic/assets"
	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// TestPanelLanguage reads the item's Status and IconName back over D-Bus,
// as a panel does, in each state the tray shows: NeedsAttention when
// something waits for the user, Passive while all is well if the user
// chose tray = "when-needed", Active otherwise; the icon named as
// installed in the icon theme, with every size of it as pixmaps besides.
func TestPanelLanguage(t *testing.T) {
	bus := bustest.New(t)
	w := startSNW(t, bus)
	b := newBackend()
	b.Set(func(s *control.Status) { s.Tray = &control.TrayStatus{Show: control.TrayWhenNeeded} })
	superviseTray(t, bus, serveControl(t, b), installIcons(t, filepath.Join(bus.Dir(), "data"))...)
	it := newItem(t, connect(t, bus), w.next(t))
	sigs := it.signals()

	// Each step sets the status anew: the control server reads the one
	// before meanwhile, so nothing it points to is changed in place.
	busesUp := func(outdated string, up bool) []control.BusStatus {
		return []control.BusStatus{{Name: "session", Up: true, ID: "s1", Since: time.Now(), Outdated: outdated},
			{Name: "system", Up: up, ID: "y1", Since: time.Now()}}
	}
	recovery := func(o control.Outcome, ended bool) *control.Recovery {
		r := &control.Recovery{Bus: "session", Started: time.Now(), Jobs: []control.Job{{App: "dunst", Outcome: o}}}
		if ended {
			r.Ended = time.Now()
		}
		return r
	}
	steps := []struct {
		name   string
		st     control.Status
		status string
		state  state
	}{
		{"healthy, when needed", control.Status{Buses: busesUp("", true)}, statusPassive, healthy},
		{"recovering", control.Status{Buses: busesUp("", true), LastRecovery: recovery(control.Running, false)}, statusActive, recovering},
		{"a casualty waits", control.Status{Buses: busesUp("", true), LastRecovery: recovery(control.Relaunched, true),
			Casualties: []control.Casualty{{ID: "c1", Bus: "session", At: time.Now()}}}, statusNeedsAttention, attention},
		{"a bus down", control.Status{Buses: busesUp("", false)}, statusActive, busDown},
		{"a failed recovery waits", control.Status{Buses: busesUp("", true), LastRecovery: recovery(control.Failed, true)},
			statusNeedsAttention, attention},
		{"an update waits", control.Status{Buses: busesUp("/usr/bin/dbus-daemon was replaced", true)}, statusNeedsAttention, attention},
		{"healthy, always", control.Status{Buses: busesUp("", true), Tray: &control.TrayStatus{Show: control.TrayAlways}}, statusActive, healthy},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			it := it.with(t)
			b.Set(func(s *control.Status) {
				st := step.st
				if st.Tray == nil {
					st.Tray = &control.TrayStatus{Show: control.TrayWhenNeeded}
				}
				st.Apps = s.Apps
				*s = st
			})
			it.wantLook(sigs, step.status, assets.IconName(step.state.Icon()), step.state)
			// Found where the desktop looks: no extra theme path.
			if p := it.str("IconThemePath"); p != "" {
				t.Errorf("IconThemePath = %q, want none", p)
			}
		})
	}
	// systray's own properties are served on.
	if v := it.prop("Title").Value(); v != title {
		t.Errorf("Title = %v, want %q", v, title)
	}
	if v, _ := it.prop("ItemIsMenu").Value().(bool); !v {
		t.Error("ItemIsMenu = false: the menu is the item's only action")
	}
}

// The icons are found where the desktop looks, else under the PREFIX the
// executable is installed in, which the panel is then told of
// (IconThemePath), else not at all.
func TestFindThemedIcons(t *testing.T) {
	tmp := t.TempDir()
	system := filepath.Join(tmp, "usr/share")
	installIcons(t, system)
	index := filepath.Join(tmp, "index-only/share")
	installIcons(t, index)
	for _, icon := range assets.Icons() {
		for _, p := range []string{"22x22/status/", "scalable/status/"} {
			matches, _ := filepath.Glob(filepath.Join(index, "icons/hicolor", p, assets.IconName(icon)+"*"))
			for _, m := range matches {
				if err := os.Remove(m); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	prefix := filepath.Join(tmp, "opt/busmedic")
	installIcons(t, filepath.Join(prefix, "share"))
	exe := filepath.Join(prefix, "bin/busmedic")
	for _, tc := range []struct {
		name string
		dirs []string
		exe  string
		want themedIcons
	}{
		{"installed where the desktop looks", []string{filepath.Join(system, "icons")}, exe, themedIcons{ok: true}},
		{"installed under the executable's prefix", []string{filepath.Join(index, "icons")}, exe,
			themedIcons{ok: true, path: filepath.Join(prefix, "share/icons")}},
		{"not installed", []string{filepath.Join(index, "icons")}, filepath.Join(tmp, "build/busmedic"), themedIcons{}},
	} {
		if got := findThemedIcons(tc.dirs, tc.exe); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// Where busmedic's icons are not installed, the item names none and
// panels show its pixmaps; with no daemon to follow it shows the
// attention icon, Active (nothing the user is asked).
func TestPanelLanguageNotInstalled(t *testing.T) {
	bus := bustest.New(t)
	w := startSNW(t, bus)
	superviseTray(t, bus, filepath.Join(bus.Dir(), "no-daemon.sock"))
	it := newItem(t, connect(t, bus), w.next(t))
	sigs := it.signals()
	it.wantLook(sigs, statusActive, "", disconnected)
	if tip := it.tooltip(); !strings.Contains(tip, "daemon not reachable") {
		t.Errorf("ToolTip = %q", tip)
	}
}

// The tooltip's description holds the reasons the menu's short labels
// leave out: here why the session bus cannot be restarted.
func TestTooltipDescription(t *testing.T) {
	bus := bustest.New(t)
	w := startSNW(t, bus)
	b := newBackend()
	reason := "the session bus (pid 42) was started by dbus-run-session, pid 41"
	b.Set(func(s *control.Status) {
		s.SessionRestartRefusal = &control.RestartRefusal{Bus: "session", PID: 42, StartedBy: "dbus-run-session", StartedByPID: 41, Reason: reason}
	})
	superviseTray(t, bus, serveControl(t, b))
	it := newItem(t, connect(t, bus), w.next(t))
	sigs := it.signals()
	it.waitFor(sigs, "the refusal in the tooltip's description", func() bool {
		var tip toolTip
		if err := it.prop("ToolTip").Store(&tip); err != nil {
			t.Fatalf("ToolTip: %v", err)
		}
		return strings.Contains(tip.Text, reason) && strings.HasPrefix(tip.Title, "busmedic: ")
	})
}
