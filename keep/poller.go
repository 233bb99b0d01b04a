package keep

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// poller reads every kept connection's sockets, both sides, on one
// goroutine waiting in epoll_wait(2), and forwards what it reads there
// too, as a C proxy's main loop does. With a goroutine per direction on
// Go's netpoller a message cost the wake of an idle thread blocked in the
// netpoller, a hand-off of the reading goroutine, and the wake of the
// runtime's monitor thread (sysmon) on the way into the next syscall:
// 3.2 context switches and 8 syscalls a message, against 1.8 and 3.3
// here (BENCH.md has the profile). While the loop waits in its syscall it
// keeps its P (see run for what that takes), so a message costs the wake
// of this one thread.
//
// The loop never waits for a write or a lock: when a socket cannot take
// a batch at once, or another goroutine holds what it needs, the loop
// stops reading the batch's source (pause) and a goroutine finishes the
// batch (sock.writeWaiting), then has the loop read the source again
// (resume). So an app that does not read holds up its own connection
// only, as it did with a goroutine per direction.
type poller struct {
	wakefd int
	log    *slog.Logger
	// wait is epoll_wait(2); tests put failures in its place.
	wait func(epfd int, events []unix.EpollEvent, msec int) (int, error)
	// quit is closed by stop: it ends a back-off after a failed wait.
	quit chan struct{}

	// mu guards what follows and orders every epoll_ctl(2) with the
	// closing and the replacing (rebuild) of epfd.
	mu    sync.Mutex
	epfd  int
	items map[uint64]pitem
	next  uint64
	done  bool // stop was called
	// finished: finish closed epfd and wakefd.
	finished bool
}

// pitem is a socket the poller reads: a connection's app side, or (bus)
// its connection to the bus of generation gen.
type pitem struct {
	c   *conn
	s   *sock
	bus bool
	gen uint64
	// paused: taken off the epoll set by pause, until resume; a rebuilt
	// set must leave it out too, or the poller would read a socket
	// whose batch another goroutine is finishing.
	paused bool
}

const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP

// yieldEvery: see poller.run.
const yieldEvery = 5 * time.Millisecond

// Back-off after epoll_wait(2) failed with an error that retrying at once
// would only repeat.
const (
	pollBackoffMin = 10 * time.Millisecond
	pollBackoffMax = time.Second
)

func newPoller(log *slog.Logger) (*poller, error) {
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	epfd, err := newEpoll(wakefd)
	if err != nil {
		unix.Close(wakefd)
		return nil, err
	}
	return &poller{
		epfd: epfd, wakefd: wakefd, items: map[uint64]pitem{},
		log: log, wait: unix.EpollWait, quit: make(chan struct{}),
	}, nil
}

// newEpoll makes an epoll set with wakefd in it, as token 0.
func newEpoll(wakefd int) (int, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("epoll_create1: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		return -1, fmt.Errorf("epoll_ctl: %w", err)
	}
	return epfd, nil
}

func event(events uint32, tok uint64) *unix.EpollEvent {
	return &unix.EpollEvent{Events: events, Fd: int32(uint32(tok)), Pad: int32(uint32(tok >> 32))}
}

// add has the poller read it.s from now on. It.s must be off the
// netpoller (sock.block).
func (p *poller) add(it pitem) error {
	s := it.s
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.closed || s.f == nil {
		return net.ErrClosed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return net.ErrClosed
	}
	p.next++
	tok := p.next
	var err error
	if cerr := s.raw.Control(func(fd uintptr) {
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), event(pollEvents, tok))
	}); cerr != nil {
		return net.ErrClosed
	}
	if err != nil {
		return err
	}
	p.items[tok] = it
	s.p, s.tok = p, tok
	return nil
}

// del stops reading fd, registered as tok. The caller holds the
// socket's cmu.
func (p *poller) del(fd int, tok uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	delete(p.items, tok)
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// pause stops reading s until resume, if the poller reads it. It takes
// s off the epoll set: a hang-up is reported even to an fd that asks
// for no events.
func (s *sock) pause() { s.rearm(unix.EPOLL_CTL_DEL) }

// resume reads s again after pause.
func (s *sock) resume() { s.rearm(unix.EPOLL_CTL_ADD) }

func (s *sock) rearm(op int) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	p := s.p
	if s.closed || p == nil {
		return
	}
	s.raw.Control(func(fd uintptr) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.done {
			return
		}
		if it, ok := p.items[s.tok]; ok {
			it.paused = op == unix.EPOLL_CTL_DEL
			p.items[s.tok] = it
		}
		unix.EpollCtl(p.epfd, op, int(fd), event(pollEvents, s.tok))
	})
}

// stop ends run. The sockets still registered stay open.
func (p *poller) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done {
		p.done = true
		close(p.quit)
	}
	// Under p.mu: once finish has closed the wake fd, its number may be
	// another file's.
	if !p.finished {
		unix.Write(p.wakefd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// finish ends run: it closes the epoll set and the wake fd. The sockets
// stay open: they are their connections' to close.
func (p *poller) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.items)
	unix.Close(p.epfd)
	unix.Close(p.wakefd)
	p.finished = true
}

// waitFailed is run's answer to a failed epoll_wait(2). EINTR and EAGAIN
// are retried at once. Any other error (EBADF, EINVAL, EFAULT: the
// epoll set itself is broken, which no kept connection can cause) is
// logged, waited on with a back-off so that a lasting failure does not
// spin, and answered with a new epoll set holding every socket the
// poller reads: the keeper must not die, nor stop forwarding, with every
// kept app's connection in its hands. It returns the next back-off, and
// false once stop was called.
func (p *poller) waitFailed(err error, backoff time.Duration) (time.Duration, bool) {
	if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
		return backoff, true
	}
	p.log.Error("keep: epoll_wait failed; rebuilding the poller's epoll set", "err", err, "retry_in", backoff)
	t := time.NewTimer(backoff)
	select {
	case <-p.quit:
		t.Stop()
		return backoff, false
	case <-t.C:
	}
	next := min(2*backoff, pollBackoffMax)
	if rerr := p.rebuild(); rerr != nil {
		p.log.Error("keep: rebuilding the poller's epoll set failed; retrying", "err", rerr)
		return next, true
	}
	return next, true
}

// rebuild replaces the epoll set with a new one holding the wake fd and
// every socket the poller reads but has not paused. A socket made
// readable meanwhile is reported by the new set at once (epoll is level
// triggered here), so nothing is lost.
func (p *poller) rebuild() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return nil
	}
	epfd, err := newEpoll(p.wakefd)
	if err != nil {
		return err
	}
	for tok, it := range p.items {
		if it.paused {
			continue
		}
		var cerr error
		// Control keeps the fd from being closed meanwhile; a socket
		// closed already is being taken out (del waits for p.mu).
		if it.s.raw.Control(func(fd uintptr) {
			cerr = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, int(fd), event(pollEvents, tok))
		}) != nil {
			continue
		}
		if cerr != nil {
			unix.Close(epfd)
			return fmt.Errorf("epoll_ctl: %w", cerr)
		}
	}
	unix.Close(p.epfd)
	p.epfd = epfd
	return nil
}

// run reads and forwards until stop.
func (p *poller) run() {
	events := make([]unix.EpollEvent, 128)
	var woke, yielded time.Time
	backoff := pollBackoffMin
	for {
		p.mu.Lock()
		epfd := p.epfd
		p.mu.Unlock()
		n, err := p.wait(epfd, events, -1)
		if err != nil {
			var ok bool
			if backoff, ok = p.waitFailed(err, backoff); !ok {
				p.finish()
				return
			}
			continue
		}
		backoff = pollBackoffMin
		// The runtime takes the P of a goroutine that has run for 10 ms
		// without being scheduled anew as soon as it is in a syscall,
		// even with other Ps idle; then each wake costs the wake of its
		// monitor thread, as with the netpoller. While messages come
		// often, being scheduled anew every few ms avoids that. (When
		// they do not, the P goes after 10 ms in epoll_wait anyway.)
		if now := time.Now(); now.Sub(woke) < yieldEvery && now.Sub(yielded) > yieldEvery {
			runtime.Gosched()
			yielded = now
		}
		woke = time.Now()
		for _, ev := range events[:max(n, 0)] {
			tok := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			p.mu.Lock()
			if tok == 0 && p.done {
				p.mu.Unlock()
				p.finish()
				return
			}
			it, ok := p.items[tok]
			p.mu.Unlock()
			switch {
			case !ok:
			case it.bus:
				it.c.busReady(it.s, it.gen)
			default:
				it.c.appReady()
			}
		}
	}
}
