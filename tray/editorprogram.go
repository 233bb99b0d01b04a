package tray

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
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

// editorCloseDelay is how long the editor has to close its window after
// SIGTERM: with unsaved changes it asks the user first, who needs the time
// to answer.
const editorCloseDelay = 2 * time.Minute

// RunEditor runs the rules editor, without a shell, on the user rules
// file config ("" for the default), and waits for it to close: "busmedic
// rules edit". The end of ctx (Ctrl-C) is passed on as SIGTERM, then a
// kill after a moment. The error wraps FindEditor's when there is no
// editor, and is an *exec.ExitError when it failed.
func RunEditor(ctx context.Context, config string, stdout, stderr io.Writer) error {
	prog, err := FindEditor()
	if err != nil {
		return fmt.Errorf("find the editor: %w", err)
	}
	var argv []string
	if config != "" {
		argv = append(argv, "--config", config)
	}
	cmd := exec.CommandContext(ctx, prog, argv...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = editorCloseDelay
	return cmd.Run()
}
