package appdb

import (
	"os"
	"path/filepath"
	"testing"
)

// writeRules writes a rules file with mode 0600 and returns its path.
func writeRules(t *testing.T, dir, text string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, fileName)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
