// Package deb tests "make deb": the packages it builds pass lintian, their
// desktop entries, AppStream files and user unit validate, and the daemon's
// package installs with dpkg in a booted Debian (test/systemdtest), runs,
// and purges without leaving a file behind.
package deb

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"busmedic/assets"
	"busmedic/test/systemdtest"
)

const hint = "run scripts/ensure-deps test"

// build runs "make deb" into a temporary directory once for the test and
// returns that directory.
func build(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"make", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%v: %s", err, hint)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	out, err := exec.Command("make", "-C", root, "deb", "DIST="+dist).CombinedOutput()
	if err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	return dist
}

// deb returns the path of package pkg's .deb in dist.
func deb(t *testing.T, dist, pkg string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dist, pkg+"_*_amd64.deb"))
	if len(m) != 1 {
		t.Fatalf("make deb made %q for %s, not one package", m, pkg)
	}
	return m[0]
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%v: %s", err, hint)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func TestDeb(t *testing.T) {
	dist := build(t)
	daemon, editor := deb(t, dist, "busmedic"), deb(t, dist, "busmedic-rules")
	stage := filepath.Join(dist, "stage")

	t.Run("lintian", func(t *testing.T) {
		out, _ := run(t, "lintian", "--tag-display-limit", "0", daemon, editor)
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "E: ") {
				t.Errorf("lintian: %s", l)
			}
		}
		t.Logf("lintian:\n%s", out)
	})

	t.Run("desktop-entries", func(t *testing.T) {
		entries, _ := filepath.Glob(filepath.Join(stage, "*", "usr", "share", "applications", "*.desktop"))
		entries = append(entries, filepath.Join(stage, "busmedic", "etc", "xdg", "autostart", "busmedic.desktop"))
		if len(entries) != 3 {
			t.Errorf("desktop entries: %q, want the daemon's, the editor's and the autostart entry", entries)
		}
		for _, e := range entries {
			if out, err := run(t, "desktop-file-validate", e); err != nil || out != "" {
				t.Errorf("desktop-file-validate %s: %v\n%s", e, err, out)
			}
			data, err := os.ReadFile(e)
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`\nExec=/usr/bin/busmedic(-rules)?\b`).Match(data) {
				t.Errorf("%s does not run a binary of the package by its path:\n%s", e, data)
			}
		}
	})

	t.Run("appstream", func(t *testing.T) {
		for pkg, id := range map[string]string{"busmedic": assets.ID, "busmedic-rules": assets.EditorID} {
			path := filepath.Join(stage, pkg, "usr", "share", "metainfo", id+".metainfo.xml")
			// --no-net: the screenshots' URLs are the repository's, not
			// reachable from every test machine.
			if out, err := run(t, "appstreamcli", "validate", "--no-net", "--pedantic", path); err != nil {
				t.Errorf("appstreamcli validate %s: %v\n%s", path, err, out)
			}
			data, _ := os.ReadFile(path)
			for _, want := range []string{"<id>" + id + "</id>", `<launchable type="desktop-id">` + id + ".desktop</launchable>"} {
				if !bytes.Contains(data, []byte(want)) {
					t.Errorf("%s lacks %s", path, want)
				}
			}
			if _, err := os.Stat(filepath.Join(stage, pkg, "usr", "share", "applications", id+".desktop")); err != nil {
				t.Errorf("%s's launchable: %v", id, err)
			}
		}
	})

	// The editor's Depends name the libraries it links, as dpkg-shlibdeps
	// sees them, so that a change of GUI toolkit cannot leave them stale.
	t.Run("editor-depends", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "debian"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "debian", "control"), []byte("Source: x\n\nPackage: x\nArchitecture: any\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := exec.LookPath("dpkg-shlibdeps"); err != nil {
			t.Fatalf("%v: %s", err, hint)
		}
		cmd := exec.Command("dpkg-shlibdeps", "-O", "-e", filepath.Join(stage, "busmedic-rules", "usr", "bin", "busmedic-rules"))
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("dpkg-shlibdeps: %v", err)
		}
		libs := strings.TrimPrefix(strings.TrimSpace(string(out)), "shlibs:Depends=")
		depends, _ := run(t, "dpkg-deb", "-f", editor, "Depends")
		for _, lib := range strings.Split(libs, ", ") {
			if !slices.Contains(strings.Split(strings.TrimSpace(depends), ", "), lib) {
				t.Errorf("busmedic-rules Depends: %s lacks %q (dpkg-shlibdeps: %s)", strings.TrimSpace(depends), lib, libs)
			}
		}
	})

	t.Run("install-purge", func(t *testing.T) {
		m := systemdtest.Boot(t, systemdtest.Options{Binds: map[string]string{"/mnt/dist": dist}})
		files := func() []string {
			// What a package may leave is anywhere but in dpkg's own
			// records and the running system's state.
			out := m.Root.Run("find", "/", "-xdev", "(", "-path", "/proc", "-o", "-path", "/sys", "-o", "-path", "/dev",
				"-o", "-path", "/run", "-o", "-path", "/tmp", "-o", "-path", "/var/tmp", "-o", "-path", "/var/lib/dpkg",
				"-o", "-path", "/var/log", "-o", "-path", "/var/cache", "-o", "-path", "/mnt", ")", "-prune", "-o", "-print")
			return strings.Split(out, "\n")
		}
		before := files()
		m.Root.Run("dpkg", "-i", "/mnt/dist/"+filepath.Base(daemon))
		const exe = "/usr/bin/busmedic" // not systemdtest.BusmedicPath, first in PATH
		if v := m.User.Run(exe, "version"); !strings.HasPrefix(v, "busmedic ") || strings.Contains(v, "devel") {
			t.Errorf("busmedic version: %q", v)
		}
		if h := m.User.Run(exe, "help"); !strings.Contains(h, "run") {
			t.Errorf("busmedic help:\n%s", h)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := m.User.Command(ctx, "systemd-analyze", "--user", "verify", "/usr/lib/systemd/user/busmedic.service").CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("busmedic")) {
			t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
		}
		if unit := m.Root.Run("cat", "/usr/lib/systemd/user/busmedic.service"); !strings.Contains(unit, "\nExecStart=/usr/bin/busmedic run\n") {
			t.Errorf("the installed unit does not run /usr/bin/busmedic:\n%s", unit)
		}
		m.Root.Run("dpkg", "--purge", "busmedic")
		if out, err := m.Root.Command(ctx, "dpkg-query", "-W", "busmedic").CombinedOutput(); err == nil {
			t.Errorf("busmedic still known to dpkg after --purge: %s", out)
		}
		was := map[string]bool{}
		for _, f := range before {
			was[f] = true
		}
		var left []string
		for _, f := range files() {
			if !was[f] {
				left = append(left, f)
			}
		}
		if len(left) > 0 {
			t.Errorf("dpkg --purge busmedic left %q", left)
		}
	})
}
