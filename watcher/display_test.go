package watcher_test

import (
	"strings"
	"testing"

	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

func TestDisplayGone(t *testing.T) {
	x := bustest.StartXvfb(t, 640, 480)
	t.Setenv("WAYLAND_DISPLAY", "")
	t.Setenv("DISPLAY", x.Name)
	if gone, why := watcher.DisplayGone(); gone {
		t.Fatalf("DisplayGone with Xvfb running = true (%s)", why)
	}
	x.Stop()
	gone, why := watcher.DisplayGone()
	if !gone || !strings.Contains(why, x.Name) {
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
