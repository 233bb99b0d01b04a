package tray

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the tray light: stock fyne.io/systray only, never the Fyne
// toolkit (~97 MB, cgo, X11 and GL), and a build without cgo, as the
// daemon binary that links this package must have.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		if strings.HasPrefix(d, "fyne.io/fyne") {
			t.Errorf("package tray depends on %s", d)
		}
		if d == "testing" {
			t.Errorf("package tray imports testing outside its tests")
		}
	}
	cmd := exec.Command("go", "build", "-o", os.DevNull, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
}
