package watcher

// SetFilesWatched sets the hook called once a connection's file watch is in
// place, for the tests of package watcher_test; call it before Run.
func SetFilesWatched(w *Watcher, f func()) { w.filesWatched = f }

// Confirmed reports whether the bus has confirmed every loss the watcher saw.
func (w *Watcher) Confirmed() bool { return w.unconfirmed.Load() == 0 }
