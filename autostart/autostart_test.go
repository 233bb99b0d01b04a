package autostart

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adrg/xdg"

	"busmedic/assets"
	"busmedic/relaunch/control"
)

// autostartEnv gives the test its own XDG directories, with no systemd
// user manager.
func autostartEnv(t *testing.T) (config, runtime string) {
	config, runtime = t.TempDir(), t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config)
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	// No system-wide entry unless a test puts one there.
	t.Setenv("XDG_CONFIG_DIRS", t.TempDir())
	return config, runtime
}

// paths reads the test's environment, as the command does.
func paths(t *testing.T) Paths {
	t.Helper()
	p, err := PathsFrom(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// enable runs Enable the default way for p, or with the unit if systemd.
func enable(t *testing.T, p Paths, systemd bool, target string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := Enable(t.Context(), p, systemd, target, &stdout, &stderr); err != nil {
		t.Fatalf("enable: %v\nstdout: %s\nstderr: %s", err, &stdout, &stderr)
	}
	return stdout.String()
}

// tell runs Disable or Status and returns what it told.
func tell(t *testing.T, p Paths, do func(context.Context, Paths, io.Writer) error) string {
	t.Helper()
	var stdout bytes.Buffer
	if err := do(t.Context(), p, &stdout); err != nil {
		t.Fatalf("%v\nstdout: %s", err, &stdout)
	}
	return stdout.String()
}

// validate runs desktop-file-validate, which the issue asks the entry to
// pass; warnings and hints fail the test too.
func validate(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("desktop-file-validate"); err != nil {
		t.Fatal("desktop-file-validate is missing: run scripts/ensure-deps test (apt-get install -y desktop-file-utils)")
	}
	out, err := exec.Command("desktop-file-validate", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("desktop-file-validate %s: %v\n%s", path, err, out)
	}
}

// listen makes a Unix socket listen at path, as a running program would.
func listen(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
}

func TestPathsFrom(t *testing.T) {
	config, runtime := autostartEnv(t)
	p := paths(t)
	want := Paths{
		Entry:   filepath.Join(config, "autostart", "busmedic.desktop"),
		Unit:    filepath.Join(config, "systemd", "user", "busmedic.service"),
		Manager: filepath.Join(runtime, "systemd", "private"),
		Control: filepath.Join(runtime, "busmedic", "control.sock"),
	}
	if p != want {
		t.Errorf("PathsFrom = %+v, want %+v", p, want)
	}
	// A plain file where the manager's socket goes is not a manager.
	if err := os.MkdirAll(filepath.Dir(p.Manager), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.Manager, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if paths(t).Systemd {
		t.Error("Systemd with a plain file as the manager's socket")
	}
	os.Remove(p.Manager)
	listen(t, p.Manager)
	if !paths(t).Systemd {
		t.Error("not Systemd with a socket listening")
	}

	// The control socket is where "busmedic run" listens by default.
	env := func(k string) string {
		if k == "XDG_RUNTIME_DIR" {
			return xdg.RuntimeDir
		}
		return os.Getenv(k)
	}
	if p, err := PathsFrom(env); err != nil || p.Control != control.DefaultPath() {
		t.Errorf("Control = %q (%v), want control.DefaultPath() = %q", p.Control, err, control.DefaultPath())
	}
}

func TestAutostartDesktopFile(t *testing.T) {
	config, _ := autostartEnv(t)
	path := filepath.Join(config, "autostart", "busmedic.desktop")
	p := paths(t)
	if p.Entry != path || p.Systemd {
		t.Errorf("paths without a user manager: %+v", p)
	}

	if out := tell(t, p, Status); !strings.Contains(out, "does not start") || !strings.Contains(out, "busmedic does not run now.") {
		t.Errorf("status before enable: %q", out)
	}
	enable(t, p, p.Systemd, "graphical-session.target")
	validate(t, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	self, err := assets.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nX-GNOME-Autostart-enabled=true\n", "\nExec=" + self + " run\n"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("%s lacks %q:\n%s", path, want, data)
		}
	}
	if out := tell(t, p, Status); !strings.Contains(out, "XDG autostart entry: "+path) {
		t.Errorf("status after enable: %q", out)
	}
	if out := tell(t, p, Disable); !strings.Contains(out, "no longer starts") {
		t.Errorf("disable: %q", out)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still there after disable: %v", path, err)
	}
	if out := tell(t, p, Disable); !strings.Contains(out, "nothing to do") {
		t.Errorf("second disable: %q", out)
	}
}

// TestAutostartUnitWithoutManager: with no user manager to ask (a unit
// written for a session to come), enable --systemd writes the unit, tells
// the systemctl line, and removes a desktop entry left from before.
func TestAutostartUnitWithoutManager(t *testing.T) {
	config, _ := autostartEnv(t)
	p := paths(t)
	enable(t, p, false, "graphical-session.target")
	desktop := filepath.Join(config, "autostart", "busmedic.desktop")
	unit := filepath.Join(config, "systemd", "user", "busmedic.service")

	out := enable(t, p, true, "graphical-session.target")
	if !strings.Contains(out, "systemctl --user enable --now busmedic.service") {
		t.Errorf("enable does not tell the systemctl line: %q", out)
	}
	if _, err := os.Stat(desktop); !os.IsNotExist(err) {
		t.Errorf("desktop entry kept beside the unit: %v", err)
	}
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := assets.Executable()
	for _, want := range []string{"\nExecStart=" + self + " run\n", "\nWantedBy=graphical-session.target\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("unit lacks %q:\n%s", want, data)
		}
	}
	if out := tell(t, p, Status); !strings.Contains(out, "systemd user unit: "+unit) || !strings.Contains(out, "no systemd user manager runs") {
		t.Errorf("status: %q", out)
	}
	if out := tell(t, p, Disable); !strings.Contains(out, "systemctl --user disable --now busmedic.service") {
		t.Errorf("disable does not tell the systemctl line: %q", out)
	}

	enable(t, p, true, "default.target")
	if data, _ := os.ReadFile(unit); !bytes.Contains(data, []byte("\nWantedBy=default.target\n")) {
		t.Errorf("target ignored:\n%s", data)
	}
	if out := enable(t, p, false, "graphical-session.target"); !strings.Contains(out, "systemctl --user disable --now busmedic.service && rm "+unit) {
		t.Errorf("desktop entry beside a unit: %q", out)
	}
}

func TestDaemonPID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busmedic", "control.sock")
	if pid := daemonPID(t.Context(), path); pid != 0 {
		t.Errorf("daemonPID with no socket = %d", pid)
	}
	listen(t, path)
	// The listener is this process: the kernel says so.
	if pid := daemonPID(t.Context(), path); pid != os.Getpid() {
		t.Errorf("daemonPID = %d, want %d", pid, os.Getpid())
	}
}
