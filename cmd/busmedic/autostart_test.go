package main

import (
	"bytes"
	"context"
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

func autostart(t *testing.T, wantCode int, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := runAutostart(context.Background(), args, &stdout, &stderr); code != wantCode {
		t.Fatalf("busmedic autostart %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, &stdout, &stderr)
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

	if out := autostart(t, 0, "status"); !strings.Contains(out, "does not start") {
		t.Errorf("status before enable: %q", out)
	}
	autostart(t, 0, "enable")
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
	if out := autostart(t, 0, "status"); !strings.Contains(out, "XDG autostart entry: "+path) {
		t.Errorf("status after enable: %q", out)
	}
	autostart(t, 0, "disable")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still there after disable: %v", path, err)
	}
	if out := autostart(t, 0, "disable"); !strings.Contains(out, "nothing to do") {
		t.Errorf("second disable: %q", out)
	}
}

// TestAutostartSystemd: with a user manager running, enable writes the unit
// (and does not run systemctl: it tells the user the line) and removes a
// desktop entry left from before.
func TestAutostartSystemd(t *testing.T) {
	config, _ := autostartEnv(t, true)
	autostart(t, 0, "--desktop-file", "enable")
	desktop := filepath.Join(config, "autostart", "busmedic.desktop")
	unit := filepath.Join(config, "systemd", "user", "busmedic.service")

	out := autostart(t, 0, "enable")
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
	if out := autostart(t, 0, "status"); !strings.Contains(out, "systemd user unit: "+unit) {
		t.Errorf("status: %q", out)
	}
	out = autostart(t, 0, "disable")
	if !strings.Contains(out, "systemctl --user disable --now busmedic.service") {
		t.Errorf("disable does not tell the systemctl line: %q", out)
	}

	autostart(t, 0, "enable", "--systemd", "--target", "default.target")
	if data, _ := os.ReadFile(unit); !bytes.Contains(data, []byte("\nWantedBy=default.target\n")) {
		t.Errorf("--target ignored:\n%s", data)
	}
}

func TestAutostartUsage(t *testing.T) {
	autostartEnv(t, false)
	autostart(t, 2)
	autostart(t, 2, "start")
	autostart(t, 2, "--systemd", "--desktop-file", "enable")
	autostart(t, 2, "enable", "status")
	autostart(t, 2, "enable", "--no-such-flag")
	for _, h := range [][]string{{"-h"}, {"enable", "-h"}} {
		if out := autostart(t, 0, h...); !strings.Contains(out, "Usage: busmedic autostart") {
			t.Errorf("%q: %q", h, out)
		}
	}
}
