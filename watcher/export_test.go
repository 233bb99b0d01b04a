package watcher

// SetFilesWatched sets the hook called once a connection's file watch is in
// place, for the tests of package watcher_test; call it before Run.
func SetFilesWatched(w *Watcher, f func()) { w.filesWatched = f }

// SetFollowing sets the hook called each time a Logind has found the session
// to follow and subscribed to its changes; call it before Run.
func SetFollowing(l *Logind, f func(session string)) { l.following = f }

// Confirmed reports whether the bus has confirmed every loss the watcher saw.
func (w *Watcher) Confirmed() bool { return w.unconfirmed.Load() == 0 }
