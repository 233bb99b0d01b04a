package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"busmedic/relaunch/control"
)

// watcherStandIn is a StatusNotifierWatcher, the panel's registry of tray
// icons, as much of it as systray uses: it takes registrations.
type watcherStandIn struct{ conn *dbus.Conn }

func (w watcherStandIn) RegisterStatusNotifierItem(sender dbus.Sender, path string) *dbus.Error {
	w.conn.Emit("/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher.StatusNotifierItemRegistered", string(sender)+path)
	return nil
}

// TestStatusSaysNoTrayHost runs busmedic with its tray on a session bus
// with no StatusNotifierWatcher (GNOME without the AppIndicator
// extension): busmedic status says why there is no icon, and stops saying
// it once a watcher came and took the icon, by itself.
func TestStatusSaysNoTrayHost(t *testing.T) {
	s := newSession(t, "version = 1\n")
	s.start("--no-tray=false")
	s.await("the tray's report of no watcher", func(st control.Status) bool { return st.Tray.Problem() != "" })
	want := "The tray icon cannot show: no StatusNotifierWatcher; on GNOME install gnome-shell-extension-appindicator."
	if out := s.runCLI("status"); !strings.Contains(out, want) {
		t.Errorf("busmedic status:\n%s\nwant %q", out, want)
	}

	conn, err := dbus.Connect(s.bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Export(watcherStandIn{conn}, "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher"); err != nil {
		t.Fatal(err)
	}
	if r, err := conn.RequestName("org.kde.StatusNotifierWatcher", dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.kde.StatusNotifierWatcher: %v, %v", r, err)
	}
	s.await("the tray's report of its icon shown", func(st control.Status) bool {
		return st.Tray != nil && st.Tray.Host != nil && st.Tray.Host.Shown
	})
	if out := s.runCLI("status"); strings.Contains(out, "cannot show") {
		t.Errorf("busmedic status with the icon shown:\n%s", out)
	}
}

// TestTrayNever runs busmedic with tray = "never": no tray icon, no word
// that none can show; setting another choice shows the icon at once, and
// "never" again takes it away, busmedic running on.
func TestTrayNever(t *testing.T) {
	never := "version = 1\n\n[settings]\ntray = \"never\"\n"
	s := newSession(t, never)
	s.start("--no-tray=false")
	trays := func() []int { return busProcesses(s.bus.Address(), "\x00tray\x00") }
	hidden := func(st control.Status) bool {
		return st.Tray != nil && st.Tray.Show == control.TrayNever && st.Tray.Host == nil
	}
	s.await("the tray setting never", hidden)
	if p := trays(); len(p) != 0 {
		t.Fatalf("tray = never: tray processes %v", p)
	}
	if out := s.runCLI("status"); !strings.Contains(out, `No tray icon: tray = "never" in the settings.`) || strings.Contains(out, "cannot show") {
		t.Errorf("busmedic status with tray = never:\n%s", out)
	}

	rules := filepath.Join(s.dir, "config/busmedic/apps.toml")
	write := func(text string) {
		t.Helper()
		tmp := rules + ".new"
		if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, rules); err != nil {
			t.Fatal(err)
		}
	}
	write("version = 1\n\n[settings]\ntray = \"when-needed\"\n")
	s.await("the tray's report, once shown", func(st control.Status) bool {
		return st.Tray != nil && st.Tray.Show == control.TrayWhenNeeded && st.Tray.Host != nil
	})
	if p := trays(); len(p) != 1 {
		t.Fatalf("tray shown: tray processes %v, want one", p)
	}
	write(never)
	s.await("the tray hidden again", hidden)
	if p := trays(); len(p) != 0 {
		t.Errorf("tray = never again: tray processes %v", p)
	}
	s.alive("the tray hidden")
}
