package tray

import (
	"os"
	"os/exec"
	"slices"
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

// TestClientsNotEngine keeps the daemon's clients on the contract: the
// tray, the rules editor and its command, and their tests, talk to the
// daemon through package control and never import the recovery engine
// (busmedic/relaunch; its child relaunch/control is the contract).
func TestClientsNotEngine(t *testing.T) {
	const engine = "busmedic/relaunch"
	for _, client := range []string{"busmedic/tray", "busmedic/tray/editor", "busmedic/cmd/busmedic-rules"} {
		if deps := depsOf(t, client); slices.Contains(deps, engine) {
			t.Errorf("%s depends on %s; clients use busmedic/relaunch/control", client, engine)
		}
	}
	// The daemon does depend on the engine: the check sees it.
	if !slices.Contains(depsOf(t, "busmedic/cmd/busmedic"), engine) {
		t.Errorf("go list shows no %s in the daemon's dependencies: the check above checks nothing", engine)
	}
}

// depsOf lists the packages pkg and its tests depend on, each once (a
// package built for a test, "p [p.test]", counts as p).
func depsOf(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-test", "-f", "{{.ImportPath}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	var deps []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, _, _ := strings.Cut(line, " ")
		deps = append(deps, path)
	}
	return deps
}
