package appdb

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// waitChange reads Changes until one satisfies ok, or fails the test after
// a deadline.
func waitChange(t *testing.T, s *Store, what string, ok func(Change) bool) Change {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case c := <-s.Changes():
			if ok(c) {
				return c
			}
		case <-deadline.C:
			t.Fatalf("no change: %s", what)
		}
	}
}

// replaceByRename writes a file the way editors do: a new file, renamed over.
func replaceByRename(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".swp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestStoreReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "busmedic")
	p := writeRules(t, dir, "[[app]]\nid = \"one\"\nexe = \"/bin/one\"\n")
	s := NewStore(Paths{User: p, System: []string{filepath.Join(t.TempDir(), "none", fileName)}},
		slog.New(slog.DiscardHandler))
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	if _, ok := s.Current().Lookup("one"); !ok {
		t.Fatal("initial load lacks rule one")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v", err)
		}
	}()
	waitChange(t, s, "watches in place", func(c Change) bool { return c.Err == nil })

	// A bad edit keeps the last good rules in force and says why.
	replaceByRename(t, p, "[[app]]\nid = \"one\"\nexe = \"/bin/one\"\ngrace = \"forever\"\n")
	c := waitChange(t, s, "bad edit reported", func(c Change) bool { return c.Err != nil })
	if _, ok := c.Set.Lookup("one"); !ok {
		t.Error("after a bad edit, the change does not carry the last good set")
	}
	if _, ok := s.Current().Lookup("one"); !ok || s.Err() == nil {
		t.Errorf("after a bad edit: Current lacks rule one, or Err is %v", s.Err())
	}

	// A good edit by rename is picked up.
	replaceByRename(t, p, "[[app]]\nid = \"two\"\nexe = \"/bin/two\"\n")
	waitChange(t, s, "good edit by rename", func(c Change) bool {
		_, ok := c.Set.Lookup("two")
		return c.Err == nil && ok
	})
	if _, ok := s.Current().Lookup("one"); ok {
		t.Error("rule one is still in force")
	}

	// So is an edit in place.
	if err := os.WriteFile(p, []byte("[[app]]\nid = \"three\"\nexe = \"/bin/three\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitChange(t, s, "edit in place", func(c Change) bool {
		_, ok := c.Set.Lookup("three")
		return c.Err == nil && ok
	})

	// Removing the file leaves no rules.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	waitChange(t, s, "file removed", func(c Change) bool { return c.Err == nil && len(c.Set.Rules()) == 0 })
}

func TestStoreStartsWithBadFile(t *testing.T) {
	p := writeRules(t, t.TempDir(), "nonsense\n")
	s := NewStore(Paths{User: p}, slog.New(slog.DiscardHandler))
	if s.Err() == nil {
		t.Fatal("Err is nil after loading a bad file")
	}
	if n := len(s.Current().Rules()); n != 0 {
		t.Errorf("Current has %d rules", n)
	}
	if c := s.Reload(); c.Err == nil || c.Set == nil {
		t.Errorf("Reload = %+v", c)
	}
}

// TestStoreSystemDirAppears: an administrator who creates the system rules
// directory after busmedic started (mkdir -p, then the file) has the rules
// taken in, without a restart of busmedic.
func TestStoreSystemDirAppears(t *testing.T) {
	user := writeRules(t, filepath.Join(t.TempDir(), "busmedic"), "")
	root := t.TempDir()
	sysDir := filepath.Join(root, "xdg", "busmedic")
	s := NewStore(Paths{User: user, System: []string{filepath.Join(sysDir, fileName)}}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	waitChange(t, s, "watches in place", func(c Change) bool { return c.Err == nil })

	if err := os.MkdirAll(sysDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The watch of the new directory is in place once a reload follows.
	waitChange(t, s, "the new directory watched", func(c Change) bool { return c.Err == nil })
	replaceByRename(t, filepath.Join(sysDir, fileName), "[[app]]\nid = \"fleet\"\nexe = \"/bin/fleet\"\n")
	waitChange(t, s, "the system rule taken in", func(c Change) bool {
		_, ok := c.Set.Lookup("fleet")
		return c.Err == nil && ok
	})
}
