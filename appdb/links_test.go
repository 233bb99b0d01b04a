package appdb

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// linkedUserFile makes the user's rules file a symlink to a file kept in
// another directory (dotfiles), with text, and returns both paths.
func linkedUserFile(t *testing.T, text string) (link, target string) {
	t.Helper()
	target = filepath.Join(t.TempDir(), "dotfiles", fileName)
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	link = filepath.Join(t.TempDir(), "busmedic", fileName)
	if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link, target
}

// A user file that is a symlink is saved where it points: the link stays,
// and the file it points to has the edit.
func TestSaveThroughSymlink(t *testing.T) {
	link, target := linkedUserFile(t, "version = 1\n")
	f, err := OpenFile(link)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRule("dunst")
	r.Names = []string{"org.freedesktop.Notifications"}
	if err := f.AddOrReplace(r); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the user file is no longer a symlink (%v, %v)", fi, err)
	}
	if b, _ := os.ReadFile(target); !strings.Contains(string(b), `id = "dunst"`) {
		t.Errorf("the file the link points to:\n%s\nwant the new rule", b)
	}
}

// A symlink to nothing is an error that names it, not a file that is
// absent: its rules must not silently be gone.
func TestLoadDanglingSymlink(t *testing.T) {
	link, target := linkedUserFile(t, "version = 1\n")
	os.Remove(target)
	_, err := Load(Paths{User: link})
	if err == nil || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Load of a symlink to nothing: %v, want an error naming it", err)
	}
}

// A FIFO where the rules file should be is refused, not waited on for good.
func TestLoadFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), fileName)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Load(Paths{User: path})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Load of a FIFO: %v, want it refused as not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Load of a FIFO did not return")
	}
}

// An edit of the file a symlinked user file points to, in its own
// directory, is picked up.
func TestStoreFollowsSymlinkTarget(t *testing.T) {
	link, target := linkedUserFile(t, "[[app]]\nid = \"one\"\nexe = \"/bin/one\"\n")
	s := NewStore(Paths{User: link}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	}()
	waitChange(t, s, "watches in place", func(c Change) bool { return c.Err == nil })
	replaceByRename(t, target, "[[app]]\nid = \"two\"\nexe = \"/bin/two\"\n")
	waitChange(t, s, "the edit of the file the link points to", func(c Change) bool {
		_, ok := c.Set.Lookup("two")
		return c.Err == nil && ok
	})
}
