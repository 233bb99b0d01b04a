package watcher

import (
	"errors"
	"fmt"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// dirWatch is the one inotify instance of a Watcher's Run, shared by the
// watch of the socket's directory (while the bus is down, see awaitBus) and
// the watch of the bus daemon's files (while it is up, see fileWatch). Each
// fsnotify.Watcher costs a reader goroutine that keeps a 64 kB buffer on
// its stack, about 100 kB resident: one instance a bus instead of two
// saves that much per bus.
//
// Only Run's goroutine reads the instance's events: awaitBus while the bus
// is down, follow while it is up, which hands the file watch what concerns
// it. So no event meant for one watch can be taken by the other, not even
// while the file watch of a lost connection winds down.
//
// The instance lives as long as Run, so that an Up never waits for
// fsnotify's Close, and what the watcher holds stays the same all along.
// Directories are counted: the socket's directory may hold the daemon's
// files too, and the file watch of a lost connection may let go of its
// directories after the next connection's took them up.
type dirWatch struct {
	mu   sync.Mutex
	fw   *fsnotify.Watcher
	refs map[string]int
}

var errNoInotify = errors.New("no inotify instance")

// open makes the inotify instance if there is none yet; only Run's
// goroutine calls it, and a failure is retried at the next call.
func (d *dirWatch) open() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fw != nil {
		return nil
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	d.fw, d.refs = fw, map[string]int{}
	return nil
}

// channels returns the instance's event and error channels, nil without an
// instance. Only Run's goroutine may receive from them.
func (d *dirWatch) channels() (<-chan fsnotify.Event, <-chan error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fw == nil {
		return nil, nil
	}
	return d.fw.Events, d.fw.Errors
}

// add watches dirs for one holder, who must remove them again. On an error
// none of dirs is added.
func (d *dirWatch) add(dirs ...string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fw == nil {
		return errNoInotify
	}
	for i, dir := range dirs {
		// Added again even if another holder has it: inotify merges the
		// two, and a directory removed and made again since gets a live
		// watch.
		if err := d.fw.Add(dir); err != nil {
			d.removeLocked(dirs[:i]...)
			return fmt.Errorf("watch %s: %w", dir, err)
		}
		d.refs[dir]++
	}
	return nil
}

// remove lets go of dirs for one holder; the last holder's removal ends
// the watch.
func (d *dirWatch) remove(dirs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removeLocked(dirs...)
}

func (d *dirWatch) removeLocked(dirs ...string) {
	for _, dir := range dirs {
		if d.refs[dir]--; d.refs[dir] <= 0 {
			delete(d.refs, dir)
			// An error means the directory is gone, and its watch with it.
			_ = d.fw.Remove(dir)
		}
	}
}

// close ends the instance and its reader goroutine, once no holder is
// left to remove a directory (Run waits for the file watches first).
func (d *dirWatch) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fw != nil {
		d.fw.Close()
		d.fw, d.refs = nil, nil
	}
}
