package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// autostartCLI runs "busmedic autostart ARGS" and checks its exit status.
func autostartCLI(t *testing.T, wantCode int, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append([]string{"autostart"}, args...), &stdout, &stderr); code != wantCode {
		t.Fatalf("busmedic autostart %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, &stdout, &stderr)
	}
	return stdout.String()
}

// autostartEnv gives the test its own XDG directories, with no systemd
// user manager.
func autostartEnv(t *testing.T) (config string) {
	config = t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config)
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	return config
}

// TestAutostartFlags: the flags, before or after the action, choose the
// way and the target; the autostart package does the rest (its tests).
func TestAutostartFlags(t *testing.T) {
	config := autostartEnv(t)
	desktop := filepath.Join(config, "autostart", "busmedic.desktop")
	unit := filepath.Join(config, "systemd", "user", "busmedic.service")

	autostartCLI(t, 0, "enable")
	if _, err := os.Stat(desktop); err != nil {
		t.Errorf("enable without a user manager: no desktop entry: %v", err)
	}
	autostartCLI(t, 0, "enable", "--systemd", "--target", "default.target")
	if data, _ := os.ReadFile(unit); !bytes.Contains(data, []byte("\nWantedBy=default.target\n")) {
		t.Errorf("--systemd --target default.target:\n%s", data)
	}
	if _, err := os.Stat(desktop); !os.IsNotExist(err) {
		t.Errorf("desktop entry kept beside the unit: %v", err)
	}
	if out := autostartCLI(t, 0, "--desktop-file", "enable"); !strings.Contains(out, "Wrote "+desktop) {
		t.Errorf("--desktop-file enable: %q", out)
	}
	if out := autostartCLI(t, 0, "status"); !strings.Contains(out, "XDG autostart entry: "+desktop) || !strings.Contains(out, "systemd user unit: "+unit) {
		t.Errorf("status: %q", out)
	}
}

func TestAutostartUsage(t *testing.T) {
	autostartEnv(t)
	autostartCLI(t, 2)
	autostartCLI(t, 2, "start")
	autostartCLI(t, 2, "--systemd", "--desktop-file", "enable")
	autostartCLI(t, 2, "enable", "status")
	autostartCLI(t, 2, "enable", "--no-such-flag")
	for _, h := range [][]string{{"-h"}, {"enable", "-h"}} {
		if out := autostartCLI(t, 0, h...); !strings.Contains(out, "Usage: busmedic autostart") {
			t.Errorf("%q: %q", h, out)
		}
	}
}
