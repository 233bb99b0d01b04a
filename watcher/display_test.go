package watcher_test

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"busmedic/watcher"
)

func TestDisplayGone(t *testing.T) {
	xvfb, err := exec.LookPath("Xvfb")
	if err != nil {
		t.Fatalf("Xvfb not found (%v); install it: apt-get install -y xvfb", err)
	}
	// -displayfd makes Xvfb pick a free display and say which when ready.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(xvfb, "-displayfd", "3", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	var display string
	select {
	case display = <-line:
	case <-time.After(deadline):
		t.Fatal("Xvfb did not start")
	}
	t.Setenv("WAYLAND_DISPLAY", "")
	t.Setenv("DISPLAY", ":"+display)
	if gone, why := watcher.DisplayGone(); gone {
		t.Fatalf("DisplayGone with Xvfb running = true (%s)", why)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	<-exited
	gone, why := watcher.DisplayGone()
	if !gone || !strings.Contains(why, ":"+display) {
		t.Errorf("DisplayGone after Xvfb exited = %v %q, want true naming the display", gone, why)
	}

	t.Setenv("DISPLAY", "")
	if gone, _ := watcher.DisplayGone(); gone {
		t.Error("DisplayGone with no display = true")
	}
	t.Setenv("WAYLAND_DISPLAY", "wayland-test-none")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	if gone, _ := watcher.DisplayGone(); !gone {
		t.Error("DisplayGone with a missing Wayland socket = false")
	}
}
