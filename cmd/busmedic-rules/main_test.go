package main

import (
	"bufio"
	"bytes"
	"errors"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"busmedic/tray/editor"
	"busmedic/watcher/bustest"
)

const deadline = 20 * time.Second

// TestDaemonHasNoFyne keeps Fyne, cgo and GL out of the daemon: the
// editor is this separate program for that reason.
func TestDaemonHasNoFyne(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "busmedic/cmd/busmedic").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		if strings.HasPrefix(d, "fyne.io/fyne/") || d == "busmedic/tray/editor" {
			t.Errorf("cmd/busmedic depends on %s", d)
		}
	}
	cmd := exec.Command("go", "build", "-o", os.DevNull, "busmedic/cmd/busmedic")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("CGO_ENABLED=0 go build ./cmd/busmedic: %v\n%s", err, out)
	}
}

// TestFyneAppMetadata checks what "fyne package" reads: the same app id
// as the program, and an icon big enough for a launcher.
func TestFyneAppMetadata(t *testing.T) {
	data, err := os.ReadFile("FyneApp.toml")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Details struct {
			Icon, Name, ID, Version string
			Build                   int
		}
	}
	if err := toml.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	d := meta.Details
	if d.ID != editor.AppID || d.Name == "" || d.Version == "" || d.Build < 1 {
		t.Errorf("FyneApp.toml details = %+v, want ID %s, a name, a version and a build", d, editor.AppID)
	}
	f, err := os.Open(d.Icon)
	if err != nil {
		t.Fatalf("icon: %v", err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil || cfg.Width < 256 || cfg.Width != cfg.Height {
		t.Errorf("icon %s: %dx%d, %v; want a square PNG of 256 px or more", d.Icon, cfg.Width, cfg.Height, err)
	}
}

// TestShowsWindowUnderXvfb builds the program, starts it on a private X
// server without a daemon, waits for it to say its window is shown, and
// ends it with SIGTERM.
func TestShowsWindowUnderXvfb(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "busmedic-rules")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The screen is large so that the pointer, which Xvfb puts at its
	// centre, is not over the window (placed at the top left): Fyne 2.7.1
	// can crash on a pointer event that comes while its window closes
	// (fyne-io/fyne#5981), and this test is about starting and stopping.
	display := bustest.StartXvfb(t, 3200, 2400).Name

	cmd := exec.Command(bin, "--config", filepath.Join(dir, "config", "apps.toml"), "--control", filepath.Join(dir, "none.sock"))
	cmd.Env = append(os.Environ(), "DISPLAY="+display, "WAYLAND_DISPLAY=", "BUSMEDIC_RULES_READY=1",
		"XDG_CONFIG_HOME="+filepath.Join(dir, "xdg"), "XDG_CONFIG_DIRS="+filepath.Join(dir, "etc"), "LANG=C.UTF-8")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	shown := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "window shown" {
				close(shown)
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })

	select {
	case <-shown:
	case err := <-exited:
		t.Fatalf("exited before showing its window: %v\n%s", err, stderr.String())
	case <-time.After(deadline):
		t.Fatalf("no window within %s\n%s", deadline, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(deadline):
		t.Fatal("still running 20s after SIGTERM")
	}
}
