package assets

import (
	"fmt"
	"os"
	"path/filepath"
)

// Executable returns the running busmedic's path with its links resolved.
// Its install prefix (PREFIX/bin/busmedic) tells where its icons were
// installed (PREFIX/share), and the autostart entry and the user unit name
// it, so that they keep working whatever the session's PATH.
func Executable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find busmedic's own path: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		return resolved, nil
	}
	return exe, nil
}
