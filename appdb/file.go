package appdb

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrConflict is returned by File.Save when the file changed on disk since
// it was opened: saving would lose the other change.
var ErrConflict = errors.New("appdb: rules file changed on disk since it was read")

// File is one rules file opened for editing (normally the user file). Edits
// rewrite only the [[app]] table concerned: comments, settings and other
// entries are kept byte for byte, and saving an unedited File writes nothing.
type File struct {
	path   string
	orig   []byte // content when opened; nil if the file did not exist
	exists bool
	mode   fs.FileMode
	doc    *document
}

// OpenFile opens a rules file for editing. A missing file opens empty. A
// file that is unsafe (see ErrUnsafe) or does not validate is refused, with
// Errors, so that an edit never makes a broken file worse.
func OpenFile(path string) (*File, error) {
	// An edit is about to be saved here: first clear what interrupted
	// saves left behind. A failure to do so hinders nothing.
	_, _ = removeLeftovers(path)
	f := &File{path: path, mode: 0o600}
	data, err := readSafe(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	case err != nil:
		return nil, asErrors(path, err)
	default:
		f.exists = true
		f.orig = data
		if fi, err := os.Stat(path); err == nil {
			f.mode = fi.Mode().Perm()
		}
	}
	f.doc = parse(path, data)
	if err := f.doc.errs(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Bytes returns the file's content, with the edits made so far.
func (f *File) Bytes() []byte { return bytes.Clone(f.doc.data) }

// Rules returns the rules of this file alone, in file order.
func (f *File) Rules() []Rule {
	out := make([]Rule, len(f.doc.rules))
	for i, r := range f.doc.rules {
		out[i] = r.clone()
	}
	return out
}

// Lookup returns the rule with the given id in this file.
func (f *File) Lookup(id string) (Rule, bool) {
	for _, r := range f.doc.rules {
		if r.ID == id {
			return r.clone(), true
		}
	}
	return Rule{}, false
}

// AddOrReplace puts r in the file: in place of the entry with the same id,
// or appended. It fails, leaving the file as it was, if the result does not
// validate.
func (f *File) AddOrReplace(r Rule) error {
	text := FormatRule(r)
	data := string(f.doc.data)
	var next string
	switch b, ok := f.block(r.ID); {
	case ok:
		next = data[:b.start] + text + data[b.end:]
	case f.doc.inline:
		next = f.rewrite(r.ID, &r)
	default:
		if strings.TrimSpace(data) == "" {
			data = fileHeader
		}
		if !strings.HasSuffix(data, "\n") {
			data += "\n"
		}
		next = data + "\n" + text
	}
	return f.replace(next, fmt.Sprintf("add rule %q", r.ID))
}

// Remove deletes the entry with the given id. It reports whether there was
// one.
func (f *File) Remove(id string) (bool, error) {
	if _, ok := f.Lookup(id); !ok {
		return false, nil
	}
	data := string(f.doc.data)
	var next string
	if b, ok := f.block(id); ok {
		end := b.end
		// Take one blank line that separated it from what follows.
		if rest := data[end:]; strings.HasPrefix(rest, "\n") {
			end++
		} else if strings.HasPrefix(rest, "\r\n") {
			end += 2
		}
		next = data[:commentStart(data, b.start)] + data[end:]
	} else {
		next = f.rewrite(id, nil)
	}
	return true, f.replace(next, fmt.Sprintf("remove rule %q", id))
}

// commentStart moves start back over the comment lines directly above it.
func commentStart(data string, start int) int {
	for start > 0 {
		prev := strings.LastIndexByte(data[:start-1], '\n') + 1
		if !strings.HasPrefix(strings.TrimSpace(data[prev:start]), "#") {
			break
		}
		start = prev
	}
	return start
}

func (f *File) block(id string) (block, bool) {
	for _, b := range f.doc.blocks {
		if b.id == id && id != "" {
			return b, true
		}
	}
	return block{}, false
}

// rewrite formats the whole file anew, with rule id replaced by r (or
// removed if r is nil). It is the fallback for files that write their apps
// as an inline array, and loses comments.
func (f *File) rewrite(id string, r *Rule) string {
	var rules []Rule
	done := false
	for _, old := range f.doc.rules {
		if old.ID == id {
			if r != nil {
				rules = append(rules, *r)
			}
			done = true
			continue
		}
		rules = append(rules, old)
	}
	if !done && r != nil {
		rules = append(rules, *r)
	}
	return formatDocument(f.doc.settings, f.doc.setKeys, rules)
}

func (f *File) replace(next, what string) error {
	d := parse(f.path, []byte(next))
	if err := d.errs(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	f.doc = d
	return nil
}

// Save writes the file atomically (see WriteAtomic) and keeps the previous
// version as FILE.bak. It does nothing if the content on disk is already the
// same, and returns ErrConflict if the file changed on disk since it was
// opened. The directory is created (mode 0700) if needed.
func (f *File) Save() error {
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save rules: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return fmt.Errorf("save rules: %w", err)
	}
	defer unlock()

	cur, err := os.ReadFile(f.path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("save rules: %w", err)
	}
	if exists != f.exists || !bytes.Equal(cur, f.orig) {
		return fmt.Errorf("save %s: %w", f.path, ErrConflict)
	}
	if exists && bytes.Equal(cur, f.doc.data) {
		return nil
	}
	if exists {
		if err := WriteAtomic(f.path+".bak", cur, f.mode); err != nil {
			return fmt.Errorf("save rules: keep previous version: %w", err)
		}
	}
	// A user file that is a symlink (dotfiles kept elsewhere) is written
	// where it points: a new file renamed over the link would leave the
	// kept file behind, unchanged and no longer read.
	target := f.path
	if real, ok := symlinkTarget(f.path); ok {
		target = real
	}
	if err := WriteAtomic(target, f.doc.data, f.mode); err != nil {
		return fmt.Errorf("save rules: %w", err)
	}
	f.orig, f.exists = bytes.Clone(f.doc.data), true
	return nil
}

// lockDir takes an exclusive advisory lock on a directory, so that two
// busmedic processes (the daemon's GUI and the CLI) save one at a time.
func lockDir(dir string) (unlock func(), err error) {
	return flockDir(dir, unix.LOCK_EX)
}

// flockDir takes the lock of lockDir with the flock operation how: with
// LOCK_NB it fails with EWOULDBLOCK when another holds it.
func flockDir(dir string, how int) (unlock func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(d.Fd()), how); err != nil {
		d.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() {
		_ = unix.Flock(int(d.Fd()), unix.LOCK_UN)
		d.Close()
	}, nil
}

// leftoverAge is how old a temporary file of WriteAtomic must be before
// removeLeftovers takes it for the remains of an interrupted save. A save
// takes milliseconds; one in another process that writes without the
// directory lock (the first run's starter file) is left alone this long.
const leftoverAge = 10 * time.Second

// tempPrefix is the start of the name of WriteAtomic's temporary files for
// the file named base; os.CreateTemp puts decimal digits after it.
func tempPrefix(base string) string { return "." + base + ".tmp-" }

// removeLeftovers removes the temporary files that saves of the rules file
// at path, or of its previous version (path.bak), left in its directory
// when they were killed midway (.apps.toml.tmp-123,
// .apps.toml.bak.tmp-456). Only such names are touched, and only regular
// files (no links) owned by this user, last written more than leftoverAge
// ago. It does nothing while a save in another busmedic process holds the
// directory's lock. It returns the paths removed.
func removeLeftovers(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if base == "" {
		return nil, nil
	}
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("leftovers of saves of %s: %w", path, err)
	}
	var candidates []string
	for _, e := range entries {
		if isTempName(e.Name(), base) || isTempName(e.Name(), base+".bak") {
			candidates = append(candidates, e.Name())
		}
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	unlock, err := flockDir(dir, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil, nil // a save is under way: the next load will see
	}
	if err != nil {
		return nil, fmt.Errorf("leftovers of saves of %s: %w", path, err)
	}
	defer unlock()
	var removed []string
	var errs []error
	uid := os.Getuid()
	for _, name := range candidates {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil {
			continue // gone meanwhile
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !fi.Mode().IsRegular() || !ok || int(st.Uid) != uid || time.Since(fi.ModTime()) < leftoverAge {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("leftovers of saves of %s: %w", path, err)
	}
	return removed, nil
}

// isTempName reports whether name is one of WriteAtomic's temporary files
// for the file named base.
func isTempName(name, base string) bool {
	rest, ok := strings.CutPrefix(name, tempPrefix(base))
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// WriteAtomic replaces the file at path with data so that, whatever is
// killed when, the path holds either the old or the new content in full: it
// writes a temporary file in the same directory, syncs it, renames it over
// path and syncs the directory.
func WriteAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, tempPrefix(base)+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		defer d.Close()
		if err := d.Sync(); err != nil {
			return fmt.Errorf("write %s: sync directory: %w", path, err)
		}
	}
	return nil
}
