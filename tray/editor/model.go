package editor

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"busmedic/appdb"
)

// entry is one rule of the list.
type entry struct {
	Rule appdb.Rule
	// System is true for a rule of a system file: it is shown read-only
	// and can be overridden by a copy in the user file.
	System bool
}

// model is the rules as the editor holds them: the user file opened for
// editing through appdb, and the rules of the system files, read-only. It
// holds no widgets and is not safe for concurrent use (the window's event
// loop owns it).
type model struct {
	paths  appdb.Paths
	file   *appdb.File // nil when the user file cannot be edited (fileErr)
	system []appdb.Rule
	// disk is the user file's content as last read or written by us (nil:
	// absent), to tell an external edit from our own save.
	disk      []byte
	diskFound bool
	fileErr   error // the user file does not open: fix it by hand first
	systemErr error // a system file does not load
}

// newModel loads the rules of paths.
func newModel(paths appdb.Paths) *model {
	m := &model{paths: paths}
	m.Reload()
	return m
}

// Path returns the user file.
func (m *model) Path() string { return m.paths.User }

// Reload reads every file again, dropping what the model held.
func (m *model) Reload() {
	m.file, m.fileErr = appdb.OpenFile(m.paths.User)
	m.disk, m.diskFound = readMaybe(m.paths.User)
	m.system, m.systemErr = nil, nil
	if len(m.paths.System) > 0 {
		set, err := appdb.Load(appdb.Paths{System: m.paths.System})
		if err != nil {
			m.systemErr = err
		} else {
			m.system = set.Rules()
		}
	}
}

// readMaybe reads a file; a missing or unreadable file reads as absent.
func readMaybe(path string) ([]byte, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	return data, true
}

// FileErr is why the user file cannot be edited, or nil.
func (m *model) FileErr() error { return m.fileErr }

// SystemErr is why a system file did not load, or nil.
func (m *model) SystemErr() error { return m.systemErr }

// Entries returns the user file's rules in file order, then the system
// rules that the user file does not override.
func (m *model) Entries() []entry {
	var out []entry
	ids := m.UserIDs()
	if m.file != nil {
		for _, r := range m.file.Rules() {
			out = append(out, entry{Rule: r})
		}
	}
	for _, r := range m.system {
		if !slices.Contains(ids, r.ID) {
			out = append(out, entry{Rule: r, System: true})
		}
	}
	return out
}

// UserIDs returns the ids of the user file's rules.
func (m *model) UserIDs() []string {
	if m.file == nil {
		return nil
	}
	var ids []string
	for _, r := range m.file.Rules() {
		ids = append(ids, r.ID)
	}
	return ids
}

// errNotEditable is returned when the user file did not open for editing.
var errNotEditable = errors.New("editor: the rules file cannot be edited until its errors are fixed")

// Save puts r in the user file, in place of the rule oldID (empty for a
// new rule; a rule whose id changed replaces its old entry), and writes the
// file through appdb: atomically, keeping a .bak, refusing with
// appdb.ErrConflict if the file changed on disk since it was read.
func (m *model) Save(oldID string, r appdb.Rule) error {
	return m.edit(func(f *appdb.File) error {
		if oldID != "" && oldID != r.ID {
			if _, err := f.Remove(oldID); err != nil {
				return err
			}
		}
		return f.AddOrReplace(r)
	})
}

// Delete removes the rule id from the user file and saves it.
func (m *model) Delete(id string) error {
	return m.edit(func(f *appdb.File) error {
		_, err := f.Remove(id)
		return err
	})
}

func (m *model) edit(change func(*appdb.File) error) error {
	if m.file == nil {
		return fmt.Errorf("%w: %v", errNotEditable, m.fileErr)
	}
	err := change(m.file)
	if err == nil {
		err = m.file.Save()
	}
	switch {
	case err == nil:
		m.disk, m.diskFound = m.file.Bytes(), true
	case errors.Is(err, appdb.ErrConflict):
		// Keep the file as it is: the window offers to reload it, and
		// the form keeps the user's edit to save again.
	default:
		// Drop the half-made edit: the file on disk is what we read.
		m.file, m.fileErr = appdb.OpenFile(m.paths.User)
	}
	return err
}

// ChangedOnDisk reports whether the user file on disk differs from what
// the model last read or wrote: someone else edited it.
func (m *model) ChangedOnDisk() bool {
	data, err := os.ReadFile(m.paths.User)
	found := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	return found != m.diskFound || !bytes.Equal(data, m.disk)
}
