// Package e2e runs whole-session scenarios as shell scripts, with real
// programs: busmedic as a user installs it, an X server, real buses and
// real legacy apps from Debian.
package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSession runs session.sh: dunst and xfce4-panel die with their session
// bus, stopped with SIGTERM and then killed with SIGKILL; busmedic brings
// them back, its tray item registers with the new panel, the icon says all
// is well and busmedic history tells it. The script waits on conditions
// with deadlines of its own; this deadline only stops a hung script.
func TestSession(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "busmedic")
	build := exec.Command("go", "build", "-o", bin, "busmedic/cmd/busmedic")
	// As the Makefile builds it.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build busmedic: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "session.sh", bin)
	// SIGTERM lets the script's trap end what it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		t.Logf("session.sh:\n%s", out)
	case errors.As(err, &ee) && ee.ExitCode() == 2:
		t.Fatalf("session.sh cannot run here (install hint below): %v\n%s", err, out)
	default:
		t.Fatalf("session.sh: %v (deadline: %v)\n%s", err, ctx.Err(), out)
	}
}
