package appdb

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// leftover makes a temporary file as WriteAtomic names it for the file
// named base in dir, as a save killed midway leaves it, last written at
// mtime.
func leftover(t *testing.T, dir, base string, mtime time.Time) string {
	t.Helper()
	f, err := os.CreateTemp(dir, tempPrefix(base)+"*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("version = 1\n[[app]]\nid = \"half"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(f.Name(), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// touch makes a file at path last written at mtime.
func touch(t *testing.T, path string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// remaining lists the entries of dir.
func remaining(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, filepath.Join(dir, e.Name()))
	}
	return names
}

func TestLoadRemovesLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "busmedic")
	p := writeRules(t, dir, "version = 1\n")
	old := time.Now().Add(-time.Hour)

	gone := []string{
		leftover(t, dir, fileName, old),
		leftover(t, dir, fileName+".bak", old),
		leftover(t, dir, fileName+".bak", old),
	}
	kept := []string{
		p,
		// A save under way in another process: too young to be a leftover.
		leftover(t, dir, fileName, time.Now()),
		// Not the temporary file of a save of ours.
		leftover(t, dir, "other.toml", old),
		filepath.Join(dir, tempPrefix(fileName)+"12x"),
		filepath.Join(dir, tempPrefix(fileName)),
		filepath.Join(dir, fileName+".tmp-123"),
		filepath.Join(dir, "notes.txt"),
	}
	for _, k := range kept[3:] {
		touch(t, k, old)
	}
	// A directory and a symbolic link with a leftover's name.
	sub := filepath.Join(dir, tempPrefix(fileName)+"111")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "target")
	touch(t, target, old)
	link := filepath.Join(dir, tempPrefix(fileName)+"222")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, sub, link)
	// Another user's file (only root can make one).
	if os.Getuid() == 0 {
		theirs := leftover(t, dir, fileName, old)
		if err := os.Lchown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, theirs)
	}

	s := NewStore(Paths{User: p}, slog.New(slog.DiscardHandler))
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	left := remaining(t, dir)
	for _, g := range gone {
		if slices.Contains(left, g) {
			t.Errorf("leftover %s not removed", g)
		}
	}
	for _, k := range kept {
		if !slices.Contains(left, k) {
			t.Errorf("%s removed; it is not a leftover of ours", k)
		}
	}
	if _, err := os.Stat(target); err != nil {
		t.Errorf("the symbolic link's target: %v", err)
	}
	if len(left) != len(kept) {
		t.Errorf("left in the directory: %q, want %q", left, kept)
	}
}

func TestLeftoversKeptDuringSave(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "busmedic")
	p := writeRules(t, dir, "version = 1\n")
	l := leftover(t, dir, fileName, time.Now().Add(-time.Hour))

	// Another process is saving: its lock is on the directory.
	unlock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(Paths{User: p}, slog.New(slog.DiscardHandler))
	if _, err := os.Stat(l); err != nil {
		t.Fatalf("a temporary file removed while a save held the lock: %v", err)
	}
	unlock()
	if c := s.Reload(); c.Err != nil {
		t.Fatal(c.Err)
	}
	if _, err := os.Stat(l); !os.IsNotExist(err) {
		t.Errorf("leftover still there after the save ended: %v", err)
	}
}

func TestOpenFileRemovesLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "busmedic")
	p := writeRules(t, dir, "version = 1\n")
	l := leftover(t, dir, fileName+".bak", time.Now().Add(-time.Hour))
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l); !os.IsNotExist(err) {
		t.Errorf("leftover still there after OpenFile: %v", err)
	}
	// The save that follows leaves nothing behind either.
	r := NewRule("dunst")
	r.Names = []string{"org.freedesktop.Notifications"}
	if err := f.AddOrReplace(r); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	want := []string{p, p + ".bak"}
	if got := remaining(t, dir); !slices.Equal(got, want) {
		t.Errorf("after a save: %q, want %q", got, want)
	}
}
