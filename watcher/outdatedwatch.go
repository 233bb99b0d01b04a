package watcher

import (
	"context"
	"slices"
)

// followFiles watches, for the lifetime of one connection, whether the bus
// daemon runs replaced code: once at once, then whenever one of its files
// is replaced on disk. The work runs in a goroutine of w.files, because
// finding the files reads dpkg's lists, which must not delay the Up and the
// inventory; its events come back on the returned channel so that follow
// emits them in order with the others. follow hands the returned file
// watch the events of dirs, whose reader it is while the bus is up. stop
// ends the goroutine; nil, nil and a no-op without a daemon to look at.
//
// The watch wakes only for file events in the daemon's directories: no
// timer runs while nothing is replaced.
func (w *Watcher) followFiles(ctx context.Context, daemon *Peer, dirs *dirWatch) (events <-chan Event, files *fileWatch, stop func()) {
	if daemon == nil || daemon.PID <= 0 {
		return nil, nil, func() {}
	}
	d := daemon.clone()
	ctx, stop = context.WithCancel(ctx)
	ch := make(chan Event, 4)
	fw := newFileWatch(dirs)
	w.files.Go(func() {
		// The watch comes before the first check, so that a replacement
		// in between is seen by one or the other.
		watched := false
		if files := daemonFiles(d); len(files) > 0 {
			if err := fw.watch(files); err != nil {
				w.log.Debug("cannot watch the bus daemon's files; outdated only checked now", "err", err)
			} else {
				watched = true
				defer fw.stop()
			}
		}
		reported := map[string]bool{}
		check := func(replaced []string) {
			outdated, why, err := checkOutdated(d)
			if err != nil {
				// The daemon is gone: its bus is going down, and the
				// next daemon gets its own check.
				w.log.Debug("outdated check", "err", err)
				return
			}
			if !outdated || reported[why] {
				return
			}
			reported[why] = true
			w.log.Info("bus daemon outdated", "pid", d.PID, "why", why)
			p := d.clone()
			select {
			case ch <- Event{Kind: Outdated, Reason: why, Files: slices.Clone(replaced), Peer: &p}:
			case <-ctx.Done():
			}
		}
		check(nil)
		if !watched {
			return
		}
		if w.filesWatched != nil {
			w.filesWatched()
		}
		fw.Run(ctx, func(file string) {
			var replaced []string
			if file != "" {
				replaced = []string{file}
			}
			check(replaced)
		})
	})
	return ch, fw, stop
}
