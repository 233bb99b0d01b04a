package autostart

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// autostartEnv gives the test its own XDG directories; withSystemd makes it
// look as if a systemd user manager ran.
func autostartEnv(t *testing.T, withSystemd bool) (config, runtime string) {
	config, runtime = t.TempDir(), t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config)
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	if withSystemd {
		if err := os.MkdirAll(filepath.Join(runtime, "systemd"), 0o700); err != nil {
			t.Fatal(err)
		}
		// The manager's socket; a plain file is enough to be seen.
		if err := os.WriteFile(filepath.Join(runtime, "systemd", "private"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
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
	if err := Enable(p, systemd, target, &stdout, &stderr); err != nil {
		t.Fatalf("enable: %v\nstdout: %s\nstderr: %s", err, &stdout, &stderr)
	}
	return stdout.String()
}

// tell runs Disable or Status and returns what it told.
func tell(t *testing.T, p Paths, do func(Paths, io.Writer) error) string {
	t.Helper()
	var stdout bytes.Buffer
	if err := do(p, &stdout); err != nil {
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

func TestAutostartDesktopFile(t *testing.T) {
	config, _ := autostartEnv(t, false)
	path := filepath.Join(config, "autostart", "busmedic.desktop")
	p := paths(t)
	if p.Entry != path || p.Systemd {
		t.Errorf("paths without a user manager: %+v", p)
	}

	if out := tell(t, p, Status); !strings.Contains(out, "does not start") {
		t.Errorf("status before enable: %q", out)
	}
	enable(t, p, p.Systemd, "graphical-session.target")
	validate(t, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	self, err := selfPath()
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
	tell(t, p, Disable)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still there after disable: %v", path, err)
	}
	if out := tell(t, p, Disable); !strings.Contains(out, "nothing to do") {
		t.Errorf("second disable: %q", out)
	}
}

// TestAutostartSystemd: with a user manager running, enable writes the unit
// (and does not run systemctl: it tells the user the line) and removes a
// desktop entry left from before.
func TestAutostartSystemd(t *testing.T) {
	config, _ := autostartEnv(t, true)
	p := paths(t)
	enable(t, p, false, "graphical-session.target")
	desktop := filepath.Join(config, "autostart", "busmedic.desktop")
	unit := filepath.Join(config, "systemd", "user", "busmedic.service")
	if p.Unit != unit || !p.Systemd {
		t.Errorf("paths with a user manager: %+v", p)
	}

	out := enable(t, p, p.Systemd, "graphical-session.target")
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
	self, _ := selfPath()
	text := string(data)
	for _, want := range []string{"\nExecStart=" + self + " run\n", "\nRestart=on-failure\n", "\nWantedBy=graphical-session.target\n", "\nKillMode=process\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %q:\n%s", want, text)
		}
	}
	// busmedic must outlive the bus: no dependency that stops it with
	// dbus.service or dbus.socket.
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, dep := range []string{"BindsTo=", "PartOf=", "Requires=", "Requisite="} {
			if strings.HasPrefix(line, dep) && strings.Contains(line, "dbus") {
				t.Errorf("unit is bound to the bus: %s", line)
			}
		}
	}
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		// A user manager is not needed to check the syntax.
		if out, err := exec.Command(sa, "verify", unit).CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
	if out := tell(t, p, Status); !strings.Contains(out, "systemd user unit: "+unit) {
		t.Errorf("status: %q", out)
	}
	out = tell(t, p, Disable)
	if !strings.Contains(out, "systemctl --user disable --now busmedic.service") {
		t.Errorf("disable does not tell the systemctl line: %q", out)
	}

	enable(t, p, true, "default.target")
	if data, _ := os.ReadFile(unit); !bytes.Contains(data, []byte("\nWantedBy=default.target\n")) {
		t.Errorf("target ignored:\n%s", data)
	}
}
