package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRulesEditMissing(t *testing.T) {
	rulesEnv(t)
	t.Setenv("PATH", t.TempDir())
	code, _, stderr := rules(t, "edit")
	if code != exitError || !strings.Contains(stderr, "busmedic-rules is not installed") ||
		!strings.Contains(stderr, "go build -o") || !strings.Contains(stderr, "libgl1-mesa-dev xorg-dev") {
		t.Errorf("code %d, stderr:\n%s", code, stderr)
	}
}

// TestRulesEditRuns puts a stand-in editor in PATH that records its
// arguments and exits 3: the arguments are passed and the status kept.
func TestRulesEditRuns(t *testing.T) {
	rulesEnv(t)
	bin := t.TempDir()
	got := filepath.Join(bin, "args")
	writeFile(t, filepath.Join(bin, "busmedic-rules"), "#!/bin/sh\necho \"$@\" >"+got+"\necho editor ran\nexit 3\n")
	if err := os.Chmod(filepath.Join(bin, "busmedic-rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	code, stdout, stderr := rules(t, "--config", "/tmp/x/apps.toml", "edit")
	if code != 3 || stdout != "editor ran\n" {
		t.Errorf("code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if args := readArgs(t, got); args != "--config /tmp/x/apps.toml" {
		t.Errorf("editor got %q", args)
	}
}

func readArgs(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
