package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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

var built struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// program builds the editor once for the tests and returns its path.
func program(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "busmedic-rules-test"); built.err != nil {
			return
		}
		bin := filepath.Join(built.dir, "busmedic-rules")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return filepath.Join(built.dir, "busmedic-rules")
}

// environ is the test's environment without the variables that say where
// the display is and which locale is in force, plus extra.
func environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "DISPLAY", k == "WAYLAND_DISPLAY", k == "LANG", k == "LANGUAGE", strings.HasPrefix(k, "LC_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// TestNoDisplay: without a display the editor says so in one line and
// exits 1: no panic, no Go stack trace, no locale noise. Each case runs
// under LANG=C.UTF-8, where Fyne used to log "Error parsing user locale C".
func TestNoDisplay(t *testing.T) {
	bin := program(t)
	// A display whose X server has gone: Xvfb started and stopped.
	x := bustest.StartXvfb(t, 320, 240)
	x.Stop()
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"DISPLAY and WAYLAND_DISPLAY unset", nil, editor.ErrNoDisplay.Error()},
		{"DISPLAY empty", []string{"DISPLAY="}, editor.ErrNoDisplay.Error()},
		{"DISPLAY without a server", []string{"DISPLAY=" + x.Name},
			"busmedic rules cannot open display " + x.Name + ": no X server answers there, or it does not let this user in"},
		{"Wayland only", []string{"WAYLAND_DISPLAY=wayland-0"},
			"busmedic rules needs an X display, and DISPLAY is not set (on Wayland, Xwayland gives one)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--config", filepath.Join(dir, "apps.toml"), "--control", filepath.Join(dir, "none.sock"))
			cmd.Env = environ(append([]string{"LANG=C.UTF-8", "XDG_CONFIG_HOME=" + dir}, tc.env...)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("exit: %v; want status 1", err)
			}
			if got := stderr.String(); got != tc.want+"\n" {
				t.Errorf("stderr:\n%s\nwant only:\n%s", got, tc.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
		})
	}
}

// TestShowsWindowUnderXvfb starts the program on a private X server
// without a daemon, waits for it to say its window is shown, and ends it
// with SIGTERM; under the C locale, plain and with a codeset, it logs
// nothing about the locale.
func TestShowsWindowUnderXvfb(t *testing.T) {
	bin := program(t)
	// The screen is large so that the pointer, which Xvfb puts at its
	// centre, is not over the window (placed at the top left): Fyne 2.7.1
	// can crash on a pointer event that comes while its window closes
	// (fyne-io/fyne#5981), and this test is about starting and stopping.
	display := bustest.StartXvfb(t, 3200, 2400).Name
	for _, lang := range []string{"C", "C.UTF-8"} {
		t.Run("LANG="+lang, func(t *testing.T) {
			stderr := showAndClose(t, bin, display, "LANG="+lang)
			for _, line := range strings.Split(stderr, "\n") {
				if strings.Contains(strings.ToLower(line), "locale") {
					t.Errorf("locale noise on stderr: %s", line)
				}
			}
		})
	}
}

// showAndClose runs the editor on display with env added, waits for its
// window, ends it with SIGTERM and returns what it wrote on stderr.
func showAndClose(t *testing.T, bin, display string, env ...string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(bin, "--config", filepath.Join(dir, "config", "apps.toml"), "--control", filepath.Join(dir, "none.sock"))
	cmd.Env = environ(append([]string{"DISPLAY=" + display, "BUSMEDIC_RULES_READY=1",
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg"), "XDG_CONFIG_DIRS=" + filepath.Join(dir, "etc")}, env...)...)
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
		t.Fatalf("no window within %s", deadline)
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
	// Read only once the program has exited: the goroutine that copies
	// its stderr has ended with cmd.Wait.
	return stderr.String()
}
