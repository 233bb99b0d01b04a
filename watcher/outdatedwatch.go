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
// emits them in order with the others. stop ends the goroutine; nil and a
// no-op without a daemon to look at.
//
// The watch wakes only for file events in the daemon's directories: no
// timer runs while nothing is replaced.
func (w *Watcher) followFiles(ctx context.Context, daemon *Peer) (events <-chan Event, stop func()) {
	if daemon == nil || daemon.PID <= 0 {
		return nil, func() {}
	}
	d := daemon.clone()
	ctx, stop = context.WithCancel(ctx)
	ch := make(chan Event, 4)
	w.files.Go(func() {
		files := daemonFiles(d)
		// The watch comes before the first check, so that a replacement
		// in between is seen by one or the other.
		var fw *fileWatch
		if len(files) > 0 {
			var err error
			if fw, err = watchFiles(files); err != nil {
				w.log.Debug("cannot watch the bus daemon's files; outdated only checked now", "err", err)
				fw = nil
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
		if fw == nil {
			return
		}
		if w.filesWatched != nil {
			w.filesWatched()
		}
		if err := fw.Run(ctx, func(file string) { check([]string{file}) }); err != nil {
			w.log.Debug("watching the bus daemon's files stopped", "err", err)
		}
	})
	return ch, stop
}
