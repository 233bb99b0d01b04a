package autostart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"busmedic/assets"
)

// fakeManager stands in for the systemd user manager: it keeps
// busmedic.service's state, answers as systemd does, and records the
// calls. The real manager is exercised in test/systemdtest.
type fakeManager struct {
	calls   []string
	enabled bool
	active  string // ActiveState; "" is inactive
	pid     uint32
	result  string            // the start job's result; "" is done
	units   map[uint32]string // GetUnitNameByPID
	// onStart, if set, runs instead of sending the start job's result.
	onStart func()
}

const wants = "/home/ada/.config/systemd/user/graphical-session.target.wants/busmedic.service"

func (f *fakeManager) call(s string) { f.calls = append(f.calls, s) }

func (f *fakeManager) ReloadContext(context.Context) error { f.call("Reload"); return nil }

func (f *fakeManager) EnableUnitFilesContext(_ context.Context, files []string, runtime, force bool) (bool, []sdbus.EnableUnitFileChange, error) {
	f.call(fmt.Sprintf("EnableUnitFiles %v %v %v", files, runtime, force))
	if f.enabled {
		return true, nil, nil
	}
	f.enabled = true
	return true, []sdbus.EnableUnitFileChange{{Type: "symlink", Filename: wants, Destination: "/home/ada/.config/systemd/user/busmedic.service"}}, nil
}

func (f *fakeManager) DisableUnitFilesContext(_ context.Context, files []string, runtime bool) ([]sdbus.DisableUnitFileChange, error) {
	f.call(fmt.Sprintf("DisableUnitFiles %v %v", files, runtime))
	if !f.enabled {
		return nil, nil
	}
	f.enabled = false
	return []sdbus.DisableUnitFileChange{{Type: "unlink", Filename: wants}}, nil
}

func (f *fakeManager) StartUnitContext(_ context.Context, name, mode string, ch chan<- string) (int, error) {
	f.call("StartUnit " + name + " " + mode)
	if f.onStart != nil {
		f.onStart()
		return 7, nil
	}
	result := f.result
	if result == "" {
		result = "done"
		f.active, f.pid = "active", 42
	}
	ch <- result
	return 7, nil
}

func (f *fakeManager) StopUnitContext(_ context.Context, name, mode string, ch chan<- string) (int, error) {
	f.call("StopUnit " + name + " " + mode)
	f.active, f.pid = "inactive", 0
	ch <- "done"
	return 8, nil
}

func (f *fakeManager) ResetFailedUnitContext(_ context.Context, name string) error {
	f.call("ResetFailedUnit " + name)
	f.active = "inactive"
	return nil
}

func (f *fakeManager) GetUnitPropertiesContext(_ context.Context, unit string) (map[string]any, error) {
	if unit != unitName {
		return nil, fmt.Errorf("unexpected unit %s", unit)
	}
	file := "disabled"
	if f.enabled {
		file = "enabled"
	}
	active, sub := f.active, "running"
	switch active {
	case "", "inactive":
		active, sub = "inactive", "dead"
	case "failed":
		sub = "failed"
	}
	return map[string]any{"UnitFileState": file, "ActiveState": active, "SubState": sub}, nil
}

func (f *fakeManager) GetServicePropertyContext(_ context.Context, service, name string) (*sdbus.Property, error) {
	if service != unitName || name != "MainPID" {
		return nil, fmt.Errorf("unexpected property %s of %s", name, service)
	}
	return &sdbus.Property{Name: name, Value: dbus.MakeVariant(f.pid)}, nil
}

func (f *fakeManager) GetUnitNameByPID(_ context.Context, pid uint32) (string, error) {
	if u, ok := f.units[pid]; ok {
		return u, nil
	}
	return "", errors.New("no unit for pid")
}

// unitEnv gives the test its directories and the unit to write.
func unitEnv(t *testing.T) (Paths, []byte) {
	t.Helper()
	autostartEnv(t)
	return paths(t), assets.UserUnit("/usr/bin/busmedic", "graphical-session.target")
}

func TestEnableUnit(t *testing.T) {
	p, unit := unitEnv(t)
	// A desktop entry from before: the unit replaces it.
	if err := writeFile(p.Entry, []byte("[Desktop Entry]\n")); err != nil {
		t.Fatal(err)
	}
	m := &fakeManager{}
	var out bytes.Buffer
	if err := enableUnit(t.Context(), m, p, unit, "graphical-session.target", &out); err != nil {
		t.Fatalf("enableUnit: %v\n%s", err, &out)
	}
	wantCalls := []string{
		"DisableUnitFiles [busmedic.service] false",
		"EnableUnitFiles [busmedic.service] false false",
		"Reload",
		"StartUnit busmedic.service replace",
	}
	if !slices.Equal(m.calls, wantCalls) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(m.calls, "\n"), strings.Join(wantCalls, "\n"))
	}
	if data, err := os.ReadFile(p.Unit); err != nil || !bytes.Equal(data, unit) {
		t.Errorf("unit file: %v\n%s", err, data)
	}
	if _, err := os.Stat(p.Entry); !os.IsNotExist(err) {
		t.Errorf("desktop entry kept beside the unit: %v", err)
	}
	for _, want := range []string{
		"Wrote " + p.Unit + ".\n",
		"Removed " + p.Entry + " (the unit replaces it).\n",
		"Created symlink " + wants + " → ",
		"Enabled busmedic.service: busmedic starts with every session that reaches graphical-session.target.\n",
		"Started busmedic.service: busmedic runs now (enabled, active (running), pid 42).\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, &out)
		}
	}

	// Again, with another target: enabled afresh (its old symlink goes),
	// and busmedic.service, running, is not started twice.
	m.calls = nil
	listen(t, p.Control)
	m.units = map[uint32]string{uint32(os.Getpid()): unitName}
	out.Reset()
	unit2 := assets.UserUnit("/usr/bin/busmedic", "default.target")
	if err := enableUnit(t.Context(), m, p, unit2, "default.target", &out); err != nil {
		t.Fatalf("enableUnit again: %v\n%s", err, &out)
	}
	if slices.ContainsFunc(m.calls, func(c string) bool { return strings.HasPrefix(c, "StartUnit") }) {
		t.Errorf("started again: %q", m.calls)
	}
	want := fmt.Sprintf("busmedic.service already runs (pid %d).\nThe new unit takes effect when it starts again: systemctl --user restart busmedic.service\n", os.Getpid())
	if !strings.HasSuffix(out.String(), want) {
		t.Errorf("output:\n%s\nwant it to end with:\n%s", &out, want)
	}
}

// TestEnableUnitOutside: a busmedic that runs outside the unit (from the
// autostart entry, through systemd's XDG autostart generator) holds the
// control socket: the unit is enabled, not started, and the user is told
// how to switch.
func TestEnableUnitOutside(t *testing.T) {
	p, unit := unitEnv(t)
	listen(t, p.Control)
	m := &fakeManager{units: map[uint32]string{uint32(os.Getpid()): "app-busmedic@autostart.service"}}
	var out bytes.Buffer
	if err := enableUnit(t.Context(), m, p, unit, "graphical-session.target", &out); err != nil {
		t.Fatalf("enableUnit: %v\n%s", err, &out)
	}
	if !m.enabled || slices.ContainsFunc(m.calls, func(c string) bool { return strings.HasPrefix(c, "StartUnit") }) {
		t.Errorf("enabled %v, calls %q; want enabled, not started", m.enabled, m.calls)
	}
	for _, want := range []string{
		fmt.Sprintf("busmedic already runs (pid %d, in app-busmedic@autostart.service), outside busmedic.service", os.Getpid()),
		"is not started now; it starts with your next session",
		fmt.Sprintf("kill %d), then run:\n  systemctl --user start busmedic.service\n", os.Getpid()),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, &out)
		}
	}
}

func TestEnableUnitStart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		active    string
		result    string
		wantCalls []string // after Reload
		wantErr   string
		wantOut   string
	}{
		{name: "inactive", active: "inactive",
			wantCalls: []string{"StartUnit busmedic.service replace"},
			wantOut:   "Started busmedic.service: busmedic runs now (enabled, active (running), pid 42).\n"},
		{name: "failed before", active: "failed",
			wantCalls: []string{"ResetFailedUnit busmedic.service", "StartUnit busmedic.service replace"},
			wantOut:   "Started busmedic.service"},
		{name: "waiting to restart", active: "activating",
			wantOut: "busmedic.service is already activating (running).\n"},
		{name: "job failed", active: "inactive", result: "failed",
			wantCalls: []string{"StartUnit busmedic.service replace"},
			wantErr:   "start busmedic.service: it failed; see journalctl --user -u busmedic.service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, unit := unitEnv(t)
			m := &fakeManager{active: tc.active, pid: 5, result: tc.result}
			var out bytes.Buffer
			err := enableUnit(t.Context(), m, p, unit, "graphical-session.target", &out)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Fatalf("enableUnit: %v, want %q\n%s", err, tc.wantErr, &out)
			}
			calls := m.calls[slices.Index(m.calls, "Reload")+1:]
			if !slices.Equal(calls, tc.wantCalls) {
				t.Errorf("calls after Reload: %q, want %q", calls, tc.wantCalls)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, &out)
			}
		})
	}
}

// TestEnableUnitNoResult: a manager that never reports the job's end
// does not hang the command: it ends with its context.
func TestEnableUnitNoResult(t *testing.T) {
	p, unit := unitEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	m := &fakeManager{onStart: cancel}
	var out bytes.Buffer
	err := enableUnit(ctx, m, p, unit, "graphical-session.target", &out)
	if err == nil || !strings.Contains(err.Error(), "start busmedic.service: no result from the user manager") || !errors.Is(err, context.Canceled) {
		t.Fatalf("enableUnit: %v", err)
	}
}

func TestRemoveUnit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		active    string
		wantCalls []string
		wantOut   string
	}{
		{name: "running", active: "active",
			wantCalls: []string{"DisableUnitFiles [busmedic.service] false", "StopUnit busmedic.service replace", "Reload"},
			wantOut:   "Removed " + wants + ".\nStopped busmedic.service: busmedic no longer runs"},
		{name: "stopped", active: "inactive",
			wantCalls: []string{"DisableUnitFiles [busmedic.service] false", "Reload"},
			wantOut:   "Removed " + wants + ".\nRemoved "},
		{name: "failed", active: "failed",
			wantCalls: []string{"DisableUnitFiles [busmedic.service] false", "ResetFailedUnit busmedic.service", "Reload"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, unit := unitEnv(t)
			if err := writeFile(p.Unit, unit); err != nil {
				t.Fatal(err)
			}
			m := &fakeManager{enabled: true, active: tc.active, pid: 42}
			var out bytes.Buffer
			if err := removeUnit(t.Context(), m, p, &out); err != nil {
				t.Fatalf("removeUnit: %v\n%s", err, &out)
			}
			if !slices.Equal(m.calls, tc.wantCalls) {
				t.Errorf("calls %q, want %q", m.calls, tc.wantCalls)
			}
			if _, err := os.Stat(p.Unit); !os.IsNotExist(err) {
				t.Errorf("unit file left: %v", err)
			}
			if !strings.Contains(out.String(), tc.wantOut) || !strings.HasSuffix(out.String(), "Removed "+p.Unit+".\n") {
				t.Errorf("output:\n%s\nwant %q, and the file's removal last", &out, tc.wantOut)
			}
		})
	}
}

func TestStatusWithManager(t *testing.T) {
	p, unit := unitEnv(t)
	if err := writeFile(p.Unit, unit); err != nil {
		t.Fatal(err)
	}
	m := &fakeManager{enabled: true, active: "active", pid: 42}
	var out bytes.Buffer
	if err := status(t.Context(), m, p, &out); err != nil {
		t.Fatal(err)
	}
	want := "systemd user unit: " + p.Unit + "\n  enabled, active (running), pid 42\nbusmedic does not run now.\n"
	if out.String() != want {
		t.Errorf("status:\n%s\nwant:\n%s", &out, want)
	}

	listen(t, p.Control)
	m.units = map[uint32]string{uint32(os.Getpid()): unitName}
	out.Reset()
	if err := status(t.Context(), m, p, &out); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("busmedic runs now: pid %d, in busmedic.service\n", os.Getpid()); !strings.HasSuffix(out.String(), want) {
		t.Errorf("status:\n%s\nwant it to end with %q", &out, want)
	}
}

func TestSymlinkChanges(t *testing.T) {
	const a, b = "/u/graphical-session.target.wants/busmedic.service", "/u/default.target.wants/busmedic.service"
	unlink := func(f string) sdbus.DisableUnitFileChange {
		return sdbus.DisableUnitFileChange{Type: "unlink", Filename: f}
	}
	symlink := func(f string) sdbus.EnableUnitFileChange {
		return sdbus.EnableUnitFileChange{Type: "symlink", Filename: f, Destination: "/u/busmedic.service"}
	}
	for _, tc := range []struct {
		name    string
		removed []sdbus.DisableUnitFileChange
		created []sdbus.EnableUnitFileChange
		want    []string
	}{
		{"none", nil, nil, nil},
		{"first enable", nil, []sdbus.EnableUnitFileChange{symlink(a)}, []string{"Created symlink " + a + " → /u/busmedic.service."}},
		{"same again", []sdbus.DisableUnitFileChange{unlink(a)}, []sdbus.EnableUnitFileChange{symlink(a)}, nil},
		{"new target", []sdbus.DisableUnitFileChange{unlink(a)}, []sdbus.EnableUnitFileChange{symlink(b)},
			[]string{"Removed " + a + ".", "Created symlink " + b + " → /u/busmedic.service."}},
		{"disable", []sdbus.DisableUnitFileChange{unlink(b)}, nil, []string{"Removed " + b + "."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := symlinkChanges(tc.removed, tc.created); !slices.Equal(got, tc.want) {
				t.Errorf("symlinkChanges = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestJobError(t *testing.T) {
	if err := jobError("start", "done"); err != nil {
		t.Errorf("done: %v", err)
	}
	for result, want := range map[string]string{
		"failed":     "start busmedic.service: it failed; see journalctl --user -u busmedic.service",
		"dependency": "start busmedic.service: a unit it depends on failed; see journalctl --user -u busmedic.service",
		"odd":        "start busmedic.service: result odd; see journalctl --user -u busmedic.service",
	} {
		if err := jobError("start", result); err == nil || err.Error() != want {
			t.Errorf("jobError(%q) = %v, want %q", result, err, want)
		}
	}
}

func TestUnitStateString(t *testing.T) {
	for _, tc := range []struct {
		st   unitState
		want string
	}{
		{unitState{"enabled", "active", "running", 42}, "enabled, active (running), pid 42"},
		{unitState{"disabled", "inactive", "dead", 0}, "disabled, inactive (dead)"},
		{unitState{"", "inactive", "dead", 0}, "not installed, inactive (dead)"},
	} {
		if got := tc.st.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.st, got, tc.want)
		}
	}
}

// TestSystemEntry: the Debian package's /etc/xdg/autostart entry starts
// busmedic for every user. The unit, and disabling, hide it for the user
// with an entry of the same name that says Hidden=true; enabling the entry
// way replaces that hiding entry with a working one.
func TestSystemEntry(t *testing.T) {
	p, unit := unitEnv(t)
	sysDir := t.TempDir()
	t.Setenv("XDG_CONFIG_DIRS", "relative/ignored"+string(filepath.ListSeparator)+sysDir)
	system := filepath.Join(sysDir, "autostart", "busmedic.desktop")
	if err := writeFile(system, assets.AutostartEntry([]string{"busmedic", "run"})); err != nil {
		t.Fatal(err)
	}
	p = paths(t)
	if p.SystemEntry != system {
		t.Fatalf("SystemEntry = %q, want %q", p.SystemEntry, system)
	}
	statusOf := func() string {
		var out bytes.Buffer
		if err := status(t.Context(), nil, p, &out); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if got := statusOf(); !strings.HasPrefix(got, "system-wide XDG autostart entry: "+system+"\n") {
		t.Errorf("status before:\n%s", got)
	}

	var out bytes.Buffer
	if err := enableUnit(t.Context(), &fakeManager{}, p, unit, "graphical-session.target", &out); err != nil {
		t.Fatalf("enableUnit: %v\n%s", err, &out)
	}
	if !isHiding(p.Entry) {
		t.Errorf("with the unit enabled, %s does not hide the system-wide entry", p.Entry)
	}
	if want := "Wrote " + p.Entry + ": it hides the system-wide " + system + " for you.\n"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, &out)
	}
	if got := statusOf(); !strings.Contains(got, "hidden for you by "+p.Entry) || strings.Contains(got, "XDG autostart entry: "+p.Entry) {
		t.Errorf("status with the unit:\n%s", got)
	}

	// The entry way: a working entry of the user's own.
	os.Remove(p.Unit)
	enable(t, p, false, "")
	if isHiding(p.Entry) {
		t.Errorf("after enable, %s still hides busmedic", p.Entry)
	}

	out.Reset()
	if err := Disable(t.Context(), p, &out); err != nil {
		t.Fatalf("Disable: %v\n%s", err, &out)
	}
	if !isHiding(p.Entry) {
		t.Errorf("after disable, %s does not hide the system-wide entry:\n%s", p.Entry, &out)
	}
	if !strings.HasSuffix(out.String(), "busmedic no longer starts with the session.\n") {
		t.Errorf("disable output:\n%s", &out)
	}
	if got := statusOf(); !strings.Contains(got, "busmedic does not start with the session") {
		t.Errorf("status after disable:\n%s", got)
	}
}
