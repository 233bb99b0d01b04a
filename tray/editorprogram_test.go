package tray

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFindEditor finds the editor in PATH (the test binary has none beside
// it), and only an executable one.
func TestFindEditor(t *testing.T) {
	bin := t.TempDir()
	t.Setenv("PATH", bin)
	if p, err := FindEditor(); err == nil {
		t.Fatalf("FindEditor with no editor = %q", p)
	}
	editor := filepath.Join(bin, EditorProgram)
	if err := os.WriteFile(editor, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := FindEditor(); err == nil {
		t.Errorf("FindEditor found %q, which is not executable", p)
	}
	if err := os.Chmod(editor, 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := FindEditor(); err != nil || p != editor {
		t.Errorf("FindEditor = %q, %v; want %s", p, err, editor)
	}
}
