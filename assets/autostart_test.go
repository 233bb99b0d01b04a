package assets

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestExecQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/usr/bin/busmedic", "/usr/bin/busmedic"},
		{"/home/ada/my bin/busmedic", `"/home/ada/my bin/busmedic"`},
		{`/opt/a"b`, `"/opt/a\"b"`},
		{"/opt/100%/busmedic", "/opt/100%%/busmedic"},
		{"/opt/$x", `"/opt/\$x"`},
		{"", `""`},
	} {
		if got := execQuote(tc.in); got != tc.want {
			t.Errorf("execQuote(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAutostartEntry(t *testing.T) {
	got := string(AutostartEntry([]string{`/home/ada/a b\c/busmedic`, "run"}))
	// Quoted for Exec, then the backslash escaped again for the file.
	if want := "\nExec=\"/home/ada/a b\\\\\\\\c/busmedic\" run\n"; !strings.Contains(got, want) {
		t.Errorf("entry lacks %q:\n%s", want, got)
	}
}

func TestUserUnit(t *testing.T) {
	got := string(UserUnit("/home/ada/.local/bin/busmedic", "default.target"))
	for _, want := range []string{"\nExecStart=/home/ada/.local/bin/busmedic run\n", "\nWantedBy=default.target\n", "\nType=exec\n", "\nRestart=on-failure\n", "\nKillMode=process\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("unit lacks %q:\n%s", want, got)
		}
	}
	if got := string(UserUnit("/opt/my apps/busmedic", "default.target")); !strings.Contains(got, "\nExecStart=\"/opt/my apps/busmedic\" run\n") {
		t.Errorf("a path with a space is not quoted:\n%s", got)
	}
}

// TestUserUnitOutlivesBus: busmedic must outlive every session bus
// restart, so nothing in its unit lets systemd stop it with the bus: no
// dependency that stops it with dbus.service or dbus.socket, and not a
// Type=dbus unit, which systemd stops when its bus name vanishes.
func TestUserUnitOutlivesBus(t *testing.T) {
	for line := range strings.Lines(string(UserUnit("/usr/bin/busmedic", "graphical-session.target"))) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		key, value, _ := strings.Cut(line, "=")
		switch key {
		case "BindsTo", "PartOf", "Requires", "Requisite", "Upholds":
			if strings.Contains(value, "dbus") {
				t.Errorf("unit is bound to the bus: %s", line)
			}
		case "BusName":
			t.Errorf("unit has a bus name: %s", line)
		case "Type":
			if value == "dbus" {
				t.Errorf("unit is %s", line)
			}
		}
	}
}

// TestUserUnitVerifies: the unit as written for an installed busmedic is
// one systemd accepts (systemd-analyze verify checks the syntax and that
// ExecStart= names an executable), not only the template.
func TestUserUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is missing (apt-get install systemd): cannot verify the unit")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"graphical-session.target", "default.target"} {
		path := filepath.Join(t.TempDir(), "busmedic.service")
		if err := os.WriteFile(path, UserUnit(exe, target), 0o644); err != nil {
			t.Fatal(err)
		}
		// The system manager's verify: the user one needs a running user
		// manager's runtime directory, and the unit's syntax is the same.
		if out, err := exec.Command(sa, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify (WantedBy=%s): %v\n%s", target, err, out)
		}
	}
}
