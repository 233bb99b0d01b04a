package appdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// defaultDebounce is how long a Store waits after the last change to a rules
// file before reloading: editors write a file in several steps.
const defaultDebounce = 100 * time.Millisecond

// Change is the outcome of one reload. Set is the set in force afterwards:
// the new one, or the last good one when Err is not nil.
type Change struct {
	Set *Set
	Err error
}

// Store holds the rules in force and reloads them when a rules file changes.
// A file that does not validate leaves the last good rules in force.
type Store struct {
	paths    Paths
	log      *slog.Logger
	debounce time.Duration
	changes  chan Change

	// reloading lets one reload at a time read, commit and publish: an
	// older read landing after a newer one would put stale rules in force
	// until the next change.
	reloading sync.Mutex

	mu  sync.Mutex
	cur *Set
	err error
}

// NewStore loads the rules once. Current returns an empty set if that load
// failed, and Err says why. A nil logger means slog.Default().
func NewStore(paths Paths, logger *slog.Logger) *Store {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{
		paths:    paths,
		log:      logger,
		debounce: defaultDebounce,
		changes:  make(chan Change, 1),
		cur:      merge(nil, nil),
	}
	s.reload()
	return s
}

// Current returns the rules in force.
func (s *Store) Current() *Set {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Err returns the error of the last load, or nil if it succeeded.
func (s *Store) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Changes delivers the outcome of each reload Run makes. It holds only the
// latest outcome: a slow reader misses none of the final state.
func (s *Store) Changes() <-chan Change { return s.changes }

// Reload loads the files now and returns the outcome, as Run does when a
// file changes.
func (s *Store) Reload() Change {
	s.reloading.Lock()
	defer s.reloading.Unlock()
	c := s.reload()
	s.publish(c)
	return c
}

func (s *Store) reload() Change {
	// Saves killed midway leave their temporary files behind; a load is
	// the time to clear them.
	removed, err := removeLeftovers(s.paths.User)
	if err != nil {
		s.log.Warn("leftovers of interrupted saves not removed", "err", err)
	}
	for _, p := range removed {
		s.log.Info("removed the leftover of an interrupted save", "file", p)
	}
	set, err := Load(s.paths)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
	if err != nil {
		s.log.Warn("rules not loaded; keeping the last good rules", "err", err)
		return Change{Set: s.cur, Err: err}
	}
	s.cur = set
	s.log.Info("rules loaded", "rules", len(set.rules), "files", set.files, "warnings", len(set.warnings))
	for _, w := range set.warnings {
		s.log.Warn("rules", "warning", w.Error())
	}
	return Change{Set: set}
}

// publish replaces any unread outcome with c.
func (s *Store) publish(c Change) {
	for {
		select {
		case s.changes <- c:
			return
		default:
		}
		select {
		case <-s.changes:
		default:
		}
	}
}

// Run watches the rules files until ctx is done, reloading after each change.
// It watches the files' directories, so that a file replaced by rename (as
// editors and package managers do) is seen; the user file's directory is
// created if missing. Once the watches are in place it reloads and publishes
// the outcome, so a reader of Changes knows that later edits will be seen.
// If watching fails, Run retries after a pause. It returns ctx.Err().
func (s *Store) Run(ctx context.Context) error {
	pause := time.Second
	for {
		err := s.watch(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errDirAppeared) {
			continue // watch it now: no pause, nothing went wrong
		}
		s.log.Warn("watching rules files failed; retrying", "err", err, "in", pause)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// existingAncestor returns the nearest ancestor of dir that is a
// directory, or "".
func existingAncestor(dir string) string {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
		if d == filepath.Dir(d) {
			return ""
		}
	}
}

// errDirGone ends a watch when a watched directory is removed or renamed.
var errDirGone = errors.New("watched directory went away")

// errDirAppeared ends a watch when a step towards a system rules directory
// that was missing is created (an administrator's mkdir -p
// /etc/xdg/busmedic): the next watch takes it in.
var errDirAppeared = errors.New("a rules directory appeared")

func (s *Store) watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch rules: %w", err)
	}
	defer w.Close()

	files := map[string]bool{}
	dirs := map[string]bool{}
	// missing are system rules directories not there yet, by the nearest
	// existing ancestor watched in their stead.
	missing := map[string][]string{}
	for i, f := range s.paths.Files() {
		f = filepath.Clean(f)
		files[f] = true
		// A file that is a symlink changes where it points: that
		// directory is watched too.
		if real, ok := symlinkTarget(f); ok && !files[real] {
			files[real] = true
			if d := filepath.Dir(real); !dirs[d] {
				if err := w.Add(d); err != nil {
					return fmt.Errorf("watch rules: %w", err)
				}
				dirs[d] = true
			}
		}
		dir := filepath.Dir(f)
		if i == 0 {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("watch rules: %w", err)
			}
		} else if _, err := os.Stat(dir); err != nil {
			// No system rules there (yet): watch the nearest ancestor
			// that exists, to see the directory appear.
			if a := existingAncestor(dir); a != "" {
				if len(missing[a]) == 0 && !dirs[a] {
					if err := w.Add(a); err != nil {
						return fmt.Errorf("watch rules: %w", err)
					}
				}
				missing[a] = append(missing[a], dir)
			}
			continue
		}
		if dirs[dir] {
			continue
		}
		if err := w.Add(dir); err != nil {
			return fmt.Errorf("watch rules: %w", err)
		}
		dirs[dir] = true
	}
	s.Reload()

	timer := time.NewTimer(s.debounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watch rules: watcher closed")
			}
			return fmt.Errorf("watch rules: %w", err)
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watch rules: watcher closed")
			}
			name := filepath.Clean(ev.Name)
			if dirs[name] && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				s.Reload()
				return fmt.Errorf("watch rules: %s: %w", name, errDirGone)
			}
			if files[name] {
				s.log.Debug("rules file changed", "file", name, "op", ev.Op.String())
				timer.Reset(s.debounce)
			}
			if ev.Has(fsnotify.Create) {
				for _, m := range missing[filepath.Dir(name)] {
					if m == name || strings.HasPrefix(m, name+string(filepath.Separator)) {
						s.log.Debug("rules directory appeared", "dir", name)
						return fmt.Errorf("watch rules: %s: %w", name, errDirAppeared)
					}
				}
			}
		case <-timer.C:
			s.Reload()
		}
	}
}
