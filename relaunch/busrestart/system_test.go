package busrestart_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"busmedic/relaunch/busrestart"
	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// systemManager is a stand-in org.freedesktop.systemd1 on a test system
// bus: it puts the bus daemon in unit, answers the unit's Id property, and
// records each RestartUnit call with the flags of its message.
type systemManager struct {
	busPID uint32
	unit   string
	// answer decides the reply to RestartUnit: nil replies with a job;
	// an error is returned; block waits for the bus to go down first, as
	// when the daemon dies before systemd's reply leaves.
	answer *dbus.Error
	block  bool
	calls  chan restartCall
	down   <-chan struct{}
}

type restartCall struct {
	unit, mode string
	flags      dbus.Flags
}

func (s *systemManager) GetUnitByPID(pid uint32) (dbus.ObjectPath, *dbus.Error) {
	if pid == s.busPID {
		return unitPath(s.unit), nil
	}
	return unitPath("session-1.scope"), nil
}

// RestartUnit takes the whole message first: godbus hands it to a method
// whose first parameter is a dbus.Message, which is how the test sees the
// header flags.
func (s *systemManager) RestartUnit(msg dbus.Message, name, mode string) (dbus.ObjectPath, *dbus.Error) {
	s.calls <- restartCall{unit: name, mode: mode, flags: msg.Flags}
	if s.block {
		<-s.down
	}
	if s.answer != nil {
		return "", s.answer
	}
	return "/org/freedesktop/systemd1/job/1", nil
}

type unitObject struct{ id string }

func (u unitObject) Get(iface, prop string) (dbus.Variant, *dbus.Error) {
	if iface == "org.freedesktop.systemd1.Unit" && prop == "Id" {
		return dbus.MakeVariant(u.id), nil
	}
	return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{prop})
}

func unitPath(unit string) dbus.ObjectPath {
	var b strings.Builder
	for _, c := range []byte(unit) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			b.WriteString("_" + strings.ToLower(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
		}
	}
	return dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + b.String())
}

// serveSystemd puts s on the bus as org.freedesktop.systemd1.
func serveSystemd(t *testing.T, bus *bustest.Bus, s *systemManager) {
	t.Helper()
	conn, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s.busPID = uint32(bus.PID())
	s.calls = make(chan restartCall, 4)
	s.down = conn.Context().Done()
	if err := conn.Export(s, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Export(unitObject{s.unit}, unitPath(s.unit), "org.freedesktop.DBus.Properties"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.systemd1: %v %v", reply, err)
	}
}

func TestSystemRestart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		unit  string
		block bool
	}{
		{name: "reply before the restart", unit: "dbus.service"},
		{name: "connection dies before the reply", unit: "dbus.service", block: true},
		{name: "dbus-broker", unit: "dbus-broker.service", block: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := bustest.New(t, bustest.SystemType())
			sd := &systemManager{unit: tc.unit, block: tc.block}
			serveSystemd(t, bus, sd)
			ctx, cancel := context.WithTimeout(t.Context(), deadline)
			defer cancel()
			result := make(chan error, 1)
			go func() { result <- busrestart.SystemRestart(ctx, bus.Address()) }()
			var call restartCall
			select {
			case call = <-sd.calls:
			case err := <-result:
				t.Fatalf("SystemRestart returned %v before calling RestartUnit", err)
			case <-ctx.Done():
				t.Fatal("no RestartUnit call")
			}
			if call.unit != tc.unit || call.mode != "replace" {
				t.Errorf("RestartUnit(%q, %q), want (%q, replace)", call.unit, call.mode, tc.unit)
			}
			if call.flags&dbus.FlagAllowInteractiveAuthorization == 0 {
				t.Errorf("RestartUnit flags %#x lack allow-interactive-authorization", call.flags)
			}
			// What systemd would do: restart the daemon.
			bus.Restart()
			select {
			case err := <-result:
				if err != nil {
					t.Errorf("SystemRestart = %v, want success", err)
				}
			case <-ctx.Done():
				t.Fatal("SystemRestart did not return after the bus restarted")
			}
		})
	}
}

func TestSystemRestartRefused(t *testing.T) {
	for _, tc := range []struct {
		name, err, want string
	}{
		{"access denied", "org.freedesktop.DBus.Error.AccessDenied", "not allowed"},
		{"no polkit agent", "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired", "no polkit agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := bustest.New(t, bustest.SystemType())
			sd := &systemManager{unit: "dbus.service", answer: dbus.NewError(tc.err, []any{"Interactive authentication required."})}
			serveSystemd(t, bus, sd)
			err := busrestart.SystemRestart(t.Context(), bus.Address())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Interactive authentication required.") {
				t.Errorf("SystemRestart = %v; want an error saying %q with systemd's message", err, tc.want)
			}
			if !bus.Running() {
				t.Error("bus stopped")
			}
		})
	}
}

func TestSystemRestartCannot(t *testing.T) {
	t.Run("no systemd", func(t *testing.T) {
		bus := bustest.New(t, bustest.SystemType())
		err := busrestart.SystemRestart(t.Context(), bus.Address())
		if !errors.Is(err, control.ErrCannotRestart) || !strings.Contains(err.Error(), "systemctl restart dbus") ||
			!strings.Contains(err.Error(), "/etc/init.d/dbus restart") {
			t.Errorf("SystemRestart without systemd = %v; want ErrCannotRestart saying how by hand", err)
		}
	})
	t.Run("daemon not in its own unit", func(t *testing.T) {
		bus := bustest.New(t, bustest.SystemType())
		sd := &systemManager{unit: "init.scope"}
		serveSystemd(t, bus, sd)
		err := busrestart.SystemRestart(t.Context(), bus.Address())
		if !errors.Is(err, control.ErrCannotRestart) || !strings.Contains(err.Error(), "init.scope") {
			t.Errorf("SystemRestart = %v; want ErrCannotRestart naming init.scope", err)
		}
		select {
		case c := <-sd.calls:
			t.Errorf("RestartUnit called: %+v", c)
		default:
		}
	})
}

func TestUnitFromPath(t *testing.T) {
	for _, unit := range []string{"dbus.service", "dbus-broker.service", "session-1.scope"} {
		if got := busrestart.UnitFromPath(unitPath(unit)); got != unit {
			t.Errorf("UnitFromPath(%s) = %q, want %q", unitPath(unit), got, unit)
		}
	}
}
