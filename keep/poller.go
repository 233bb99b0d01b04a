package keep

import (
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
	epfd, wakefd int

	// mu guards what follows and orders every epoll_ctl(2) with the
	// closing of epfd.
	mu    sync.Mutex
	items map[uint64]pitem
	next  uint64
	done  bool
}

// pitem is a socket the poller reads: a connection's app side, or (bus)
// its connection to the bus of generation gen.
type pitem struct {
	c   *conn
	s   *sock
	bus bool
	gen uint64
}

const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP

// yieldEvery: see poller.run.
const yieldEvery = 5 * time.Millisecond

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN} // token 0
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	return &poller{epfd: epfd, wakefd: wakefd, items: map[uint64]pitem{}}, nil
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
		if !p.done {
			unix.EpollCtl(p.epfd, op, int(fd), event(pollEvents, s.tok))
		}
	})
}

// stop ends run. The sockets still registered stay open.
func (p *poller) stop() {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
	unix.Write(p.wakefd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
}

// run reads and forwards until stop.
func (p *poller) run() {
	events := make([]unix.EpollEvent, 128)
	var woke, yielded time.Time
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil && err != unix.EINTR {
			panic("keep: epoll_wait: " + err.Error())
		}
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
				clear(p.items)
				unix.Close(p.epfd)
				unix.Close(p.wakefd)
				p.mu.Unlock()
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
