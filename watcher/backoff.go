package watcher

import (
	"math/rand/v2"
	"time"
)

// backoff yields capped exponential delays with ±20% jitter, so that many
// clients of one bus do not all retry in the same instant.
type backoff struct {
	cur, max time.Duration
}

func newBackoff(first, max time.Duration) *backoff {
	return &backoff{cur: first, max: max}
}

func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	jitter := time.Duration(rand.Int64N(int64(d)/5*2+1)) - d/5
	return d + jitter
}
