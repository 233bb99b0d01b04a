package watcher

import (
	"context"
	"sync"
)

// RunAll runs each of ws (see Watcher.Run) with out as the one channel of
// all their events, until ctx is done; once every watcher has returned, it
// closes out and returns. Tee is its counterpart, from one channel to
// several.
func RunAll(ctx context.Context, ws []*Watcher, out chan<- Event) {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { w.Run(ctx, out) })
	}
	wg.Wait()
	close(out)
}
