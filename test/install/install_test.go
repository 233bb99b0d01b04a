// Package install tests "make install" and "make uninstall" from the
// repository root, as a user runs them.
package install

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"busmedic/assets"
)

// root is the repository root, where the Makefile is.
func root(t *testing.T) string {
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustMake(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is missing: run scripts/ensure-deps test (apt-get install -y make)")
	}
	cmd := exec.Command("make", append([]string{"-C", root(t)}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tree lists every file and directory under dir, relative to it.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir {
			rel, _ := filepath.Rel(dir, path)
			if d.IsDir() {
				rel += "/"
			}
			got = append(got, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return got
}

func readManifest(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("install manifest: %v", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// TestInstallUninstall: make install into a prefix that does not exist,
// and into one where the user already has files; make uninstall leaves the
// first gone and the second as it was.
func TestInstallUninstall(t *testing.T) {
	tmp := t.TempDir()
	out := filepath.Join(tmp, "build")
	fresh := filepath.Join(tmp, "fresh")
	shared := filepath.Join(tmp, "shared")
	mine := filepath.Join(shared, "share", "applications", "mine.desktop")
	if err := os.MkdirAll(filepath.Dir(mine), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mine, []byte("[Desktop Entry]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := tree(t, shared)

	mustMake(t, "install", "PREFIX="+fresh, "OUT="+out)
	// Installing twice must not lose track of the directories the first
	// install created.
	mustMake(t, "install", "PREFIX="+shared, "OUT="+out)
	mustMake(t, "install", "PREFIX="+shared, "OUT="+out)

	manifest := filepath.Join(fresh, "share", "busmedic", "installed.txt")
	listed := readManifest(t, manifest)
	var want []string
	for _, l := range listed {
		rel, err := filepath.Rel(fresh, strings.TrimSuffix(l, "/"))
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("manifest names %s, outside the prefix", l)
			continue
		}
		if rel == "." {
			continue // the prefix itself, created by the install
		}
		if strings.HasSuffix(l, "/") {
			rel += "/"
		}
		want = append(want, rel)
	}
	got := tree(t, fresh)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("installed tree and manifest differ:\ninstalled: %q\nlisted:    %q", got, want)
	}

	var expect []string
	for _, size := range assets.Sizes() {
		expect = append(expect, fmt.Sprintf("share/icons/hicolor/%dx%d/apps/busmedic.png", size, size))
		for _, icon := range assets.Icons() {
			expect = append(expect, fmt.Sprintf("share/icons/hicolor/%dx%d/status/%s.png", size, size, assets.IconName(icon)))
		}
	}
	for _, icon := range assets.Icons() {
		expect = append(expect, "share/icons/hicolor/scalable/status/"+assets.IconName(icon)+".svg",
			"share/icons/hicolor/scalable/status/"+assets.IconName(icon)+"-symbolic.svg")
	}
	expect = append(expect, "bin/busmedic", "bin/busmedic-rules",
		"share/icons/hicolor/scalable/apps/busmedic.svg", "share/icons/hicolor/256x256/apps/busmedic-rules.png",
		"share/applications/"+assets.ID+".desktop", "share/applications/"+assets.EditorID+".desktop",
		"share/metainfo/"+assets.ID+".metainfo.xml", "share/metainfo/"+assets.EditorID+".metainfo.xml",
		"lib/systemd/user/busmedic.service", "share/doc/busmedic/rules.md", "share/doc/busmedic/README.md",
		"share/busmedic/installed.txt")
	for _, e := range expect {
		if !slices.Contains(got, e) {
			t.Errorf("not installed: %s", e)
		}
	}
	// The starter rules file sends the user to the installed reference.
	if starter, err := os.ReadFile(filepath.Join(root(t), "appdb", "starter.toml")); err != nil ||
		!strings.Contains(string(starter), "/usr/share/doc/busmedic/rules.md") ||
		!strings.Contains(string(starter), "PREFIX/share/doc/busmedic/rules.md") {
		t.Errorf("appdb/starter.toml does not name the installed share/doc/busmedic/rules.md (%v)", err)
	}
	if _, err := exec.LookPath("desktop-file-validate"); err != nil {
		t.Fatal("desktop-file-validate is missing: run scripts/ensure-deps test (apt-get install -y desktop-file-utils)")
	}
	for d, exe := range map[string]string{assets.ID + ".desktop": "busmedic", assets.EditorID + ".desktop": "busmedic-rules"} {
		path := filepath.Join(fresh, "share", "applications", d)
		if msg, err := exec.Command("desktop-file-validate", path).CombinedOutput(); err != nil || len(msg) > 0 {
			t.Errorf("desktop-file-validate %s: %v\n%s", d, err, msg)
		}
		data, _ := os.ReadFile(path)
		if exe := filepath.Join(fresh, "bin", exe); !strings.Contains(string(data), "\nExec="+exe) {
			t.Errorf("%s does not run %s:\n%s", d, exe, data)
		}
	}
	if msg, err := exec.Command(filepath.Join(fresh, "bin", "busmedic"), "help").CombinedOutput(); err != nil {
		t.Errorf("installed busmedic help: %v\n%s", err, msg)
	}
	// The Makefile stamps the version (git describe) into the binary.
	if msg, err := exec.Command(filepath.Join(fresh, "bin", "busmedic"), "version").Output(); err != nil ||
		!strings.HasPrefix(string(msg), "busmedic ") || strings.HasPrefix(string(msg), "busmedic devel") {
		t.Errorf("installed busmedic version: %q, %v", msg, err)
	}

	mustMake(t, "uninstall", "PREFIX="+fresh)
	mustMake(t, "uninstall", "PREFIX="+shared)
	if left := tree(t, fresh); len(left) > 0 {
		t.Errorf("make uninstall left %q in %s", left, fresh)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("make uninstall left the prefix it created: %v", err)
	}
	if after := tree(t, shared); !slices.Equal(after, before) {
		t.Errorf("make uninstall changed what the user had:\nbefore: %q\nafter:  %q", before, after)
	}
}
