package appdb

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// starter is the commented rules file busmedic writes on first run: it
// explains the format where the user will look, and holds no rule, so that
// nothing is relaunched without the user's yes.
//
//go:embed starter.toml
var starter []byte

// WriteStarter writes the starter rules file at path, creating its
// directory (mode 0700), unless a file is already there: it then returns an
// error wrapping fs.ErrExist and leaves the file alone.
func WriteStarter(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write starter rules: %w", err)
	}
	// The lock Save takes: a rule saved meanwhile by the editor or the CLI
	// is not overwritten.
	unlock, err := lockDir(dir)
	if err != nil {
		return fmt.Errorf("write starter rules: %w", err)
	}
	defer unlock()
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("write starter rules: %s: %w", path, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write starter rules: %w", err)
	}
	return WriteAtomic(path, starter, 0o600)
}
