// Package fleet tests the system layer of the rules as an administrator
// ships it (docs/rules.md, "Rules for a fleet"): the system file and the
// user file are the ones the documentation shows, loaded as busmedic loads
// them, and read back through the busmedic command.
package fleet

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"busmedic/appdb"
)

// example returns the TOML block of docs/rules.md that follows the marker
// <!-- fleet: which ... -->.
func example(t *testing.T, which string) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- fleet: " + regexp.QuoteMeta(which) + "[^>]*-->\n```toml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatalf("docs/rules.md has no fleet example %q", which)
	}
	return string(m[1])
}

// layout writes the documented files as a machine has them: the system
// file (mode 0644) under an $XDG_CONFIG_DIRS directory, and, if withUser,
// the user's (0600) under $XDG_CONFIG_HOME.
func layout(t *testing.T, withUser bool) (paths appdb.Paths, env []string) {
	t.Helper()
	dir := t.TempDir()
	sys := filepath.Join(dir, "etc", "xdg")
	home := filepath.Join(dir, "home", ".config")
	paths = appdb.Paths{User: filepath.Join(home, "busmedic", "apps.toml"), System: []string{filepath.Join(sys, "busmedic", "apps.toml")}}
	write(t, paths.System[0], example(t, "system file"), 0o644)
	if withUser {
		write(t, paths.User, example(t, "user file"), 0o600)
	}
	return paths, []string{"XDG_CONFIG_DIRS=" + sys, "XDG_CONFIG_HOME=" + home, "HOME=" + filepath.Dir(home)}
}

func write(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode goes through the umask.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestLayers(t *testing.T) {
	for _, tc := range []struct {
		name        string
		withUser    bool
		idle        int
		dunstFrom   int // index in paths.Files()
		dunstConfig bool
	}{
		{name: "system file alone", idle: 15, dunstFrom: 1},
		{name: "user file over it", withUser: true, idle: 5, dunstFrom: 0, dunstConfig: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			paths, _ := layout(t, tc.withUser)
			set, err := appdb.Load(paths)
			if err != nil {
				t.Fatal(err)
			}
			s := set.Settings()
			for _, bus := range []string{"session", "system"} {
				if got := s.RestartAfterUpdateFor(bus); got != "when-idle" {
					t.Errorf("restart after update of the %s bus: %q, want the fleet's when-idle", bus, got)
				}
			}
			if s.IdleMinutes != tc.idle {
				t.Errorf("idle_minutes = %d, want %d", s.IdleMinutes, tc.idle)
			}
			r, ok := set.Lookup("dunst")
			if !ok {
				t.Fatal("no dunst rule")
			}
			if want := paths.Files()[tc.dunstFrom]; r.Source != want {
				t.Errorf("dunst rule from %s, want %s", r.Source, want)
			}
			if got := slices.Contains(r.Exec, "-config"); got != tc.dunstConfig {
				t.Errorf("dunst exec = %q: the user's rule must replace the system's whole", r.Exec)
			}
			if n := len(set.Rules()); n != 1 {
				t.Errorf("%d rules, want 1: a user rule replaces the system rule of its id", n)
			}
		})
	}
}

// TestCommand reads the layers back as an administrator checks a machine:
// busmedic rules check and list, and a system file others could write is
// refused.
func TestCommand(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "busmedic")
	if out, err := exec.Command("go", "build", "-o", bin, "busmedic/cmd/busmedic").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	paths, env := layout(t, true)
	busmedic := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Env = append(cmd.Env, appdb.EnvConfig+"=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := busmedic("rules", "check"); err != nil {
		t.Errorf("busmedic rules check: %v\n%s", err, out)
	}
	out, err := busmedic("rules", "list")
	if err != nil {
		t.Fatalf("busmedic rules list: %v\n%s", err, out)
	}
	if !strings.Contains(out, paths.User+":") || strings.Contains(out, paths.System[0]+":") {
		t.Errorf("busmedic rules list shows the dunst rule from the wrong file:\n%s", out)
	}
	out, err = busmedic("rules", "path", "--all")
	if err != nil || !strings.Contains(out, paths.System[0]) {
		t.Errorf("busmedic rules path --all: %v\n%s", err, out)
	}

	if err := os.Chmod(paths.System[0], 0o666); err != nil {
		t.Fatal(err)
	}
	out, err = busmedic("rules", "check")
	if err == nil || !strings.Contains(out, "writable by group or others") {
		t.Errorf("busmedic rules check of a system file anyone can write: %v\n%s", err, out)
	}
}
