package tray

import (
	"os"
	"os/exec"
	"path/filepath"
)

// EditorProgram is the rules editor's executable: the window that the
// tray's "Edit rules…" and "Recovery history…" open, as do the daemon's
// notifications and "busmedic rules edit". It is a program of its own
// because it links Fyne, cgo and GL, which busmedic must not.
const EditorProgram = "busmedic-rules"

// FindEditor returns the path of the rules editor: EditorProgram next to
// this executable (where installing both puts it, and where an unpacked
// release has it), else in PATH. The error is exec.LookPath's when it is
// in neither.
func FindEditor() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), EditorProgram)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(EditorProgram)
}
