package main

import (
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
