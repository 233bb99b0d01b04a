package watcher

import "context"

// Tee sends every event from in to each of outs, in order, until in is
// closed or ctx is done; then it closes outs. A slow receiver holds up the
// others, so each out should be read by a loop that does not block on
// long work (the recovery engine and the update policy both hand long
// work to goroutines).
func Tee(ctx context.Context, in <-chan Event, outs ...chan<- Event) {
	defer func() {
		for _, o := range outs {
			close(o)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-in:
			if !ok {
				return
			}
			for _, o := range outs {
				select {
				case o <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}
