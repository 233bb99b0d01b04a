package keep

import (
	"encoding/binary"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pipeRefs counts the fds of this process that are ends of the pipe
// whose end fd is.
func pipeRefs(t *testing.T, fd int) int {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("pipe:[%d]", st.Ino)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == want {
			n++
		}
	}
	return n
}

// TestMalformedAfterFDMessageClosesFDs: an app sends, in one write, a
// message carrying an fd and then bytes that are not D-Bus. The keeper
// disconnects it, and must not keep the fd of the good message (which it
// had already put in its batch to the bus): a leak per such connection
// would use up the keeper's fds, for every kept app.
func TestMalformedAfterFDMessageClosesFDs(t *testing.T) {
	for _, side := range []string{"app", "bus"} {
		t.Run(side, func(t *testing.T) {
			r := newForwardRig(t, 1)
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(p[1])
			msg := appendMessage(nil, typeSignal, flagNoReplyExpected, 5, &fields{
				path: "/org/example/Obj", iface: "org.example.Iface", member: "Sig", sender: ":1.7", dest: ":1.1",
			}, nil)
			fdMsg := withUnixFDs(t, msg, 1)
			garbage := []byte("xxxxxxxxxxxxxxxx")
			from, sock := r.app, r.c.app
			if side == "bus" {
				from, sock = r.bus, r.c.up
			}
			if _, _, err := from.WriteMsgUnix(append(fdMsg, garbage...), unix.UnixRights(p[0]), nil); err != nil {
				t.Fatal(err)
			}
			unix.Close(p[0])
			if err := sock.fill(true); err != nil {
				t.Fatal(err)
			}
			var err error
			if side == "app" {
				err = r.c.fromApp(true)
			} else {
				err = r.c.fromBus(r.c.up, true)
			}
			if err == nil {
				t.Fatal("no error for bytes that are not D-Bus")
			}
			r.c.close()
			if n := pipeRefs(t, p[1]); n != 1 {
				t.Errorf("the keeper holds %d fds of the pipe after disconnecting, want 0", n-1)
			}
		})
	}
}

// withUnixFDs returns msg (little-endian, made by appendMessage) with a
// unix_fds header field of n.
func withUnixFDs(t *testing.T, msg []byte, n uint32) []byte {
	var h header
	if err := parseHeader(msg, &h); err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), msg[:h.fieldsEnd]...)
	out = pad(out, 0, 8)
	out = append(out, fieldUnixFDs, 1, 'u', 0)
	out = appendU32(out, false, n)
	putU32(out[12:], false, uint32(len(out)-fixedHeader))
	out = pad(out, 0, 8)
	out = append(out, msg[h.bodyStart:]...)
	if err := parseHeader(out, &h); err != nil || h.unixFDs != n {
		t.Fatalf("withUnixFDs: %v", err)
	}
	return out
}

// TestReplayFailedAfterGoLiveClosesHeldFDsOnce: when a replay's last
// step (goLive) fails because the bus went away again, goLive has closed
// the fds of the messages held for the app; the replay's clean-up must
// not close those fd numbers again: by then they may be another
// connection's.
func TestReplayFailedAfterGoLiveClosesHeldFDsOnce(t *testing.T) {
	r := newForwardRig(t, 1)
	c, k := r.c, r.c.k
	c.state, c.up = stReplay, nil
	_, upEnd := socketPair(t)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	rc := snapshot(c)
	rc.up = newSock(upEnd)
	rc.heldFDs = []int{p[0]}
	k.gen = 7
	if rc.err = k.tell(rc, 6, nil); rc.err == nil {
		t.Fatal("goLive did not fail on a bus that went away")
	}
	// Whatever takes the fd number now is someone else's.
	var q [2]int
	if err := unix.Pipe2(q[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(q[0])
	defer unix.Close(q[1])
	if q[0] != p[0] && q[1] != p[0] {
		t.Skip("the fd number was not reused")
	}
	k.replayFailed(rc)
	for _, fd := range q {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			t.Errorf("fd %d, which reused a held fd's number, was closed by the replay's clean-up: %v", fd, err)
		}
	}
}

// fillApp makes the rig's forwarding leave a batch from the bus to the
// app to a goroutine that waits for the app to read (it does not): the
// app's socket is full.
func fillApp(t *testing.T, r *forwardRig) {
	t.Helper()
	c := r.c
	if err := c.app.block(); err != nil {
		t.Fatal(err)
	}
	if err := c.up.block(); err != nil {
		t.Fatal(err)
	}
	w := writer{}
	w.str(string(make([]byte, 64<<10)))
	big := appendMessage(nil, typeSignal, flagNoReplyExpected, 9, &fields{
		path: "/org/example/Obj", iface: "org.example.Iface", member: "Big", sender: ":1.7", dest: ":1.1", sig: "s",
	}, w.b)
	for i := 0; i < 256; i++ {
		if _, err := r.bus.Write(big); err != nil {
			t.Fatal(err)
		}
		for {
			err := c.up.fill(false)
			if err == errAgain {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := c.fromBus(c.up, false); err == errAgain {
				return // a goroutine waits for the app to read
			}
		}
	}
	t.Fatal("the app's socket took everything")
}

// TestTellAppNotReading: an app that stops reading (frozen, stopped)
// while the bus sends it more than its socket holds leaves the rest of
// the batch to a goroutine that waits for as long as the app does not
// read. What the keeper tells the app itself (NoServer at a restart,
// the signals of a replay; markDown and the reconnect loop tell them,
// for every app) must not wait at all, and, as on a real bus, the app is
// not dropped for being slow: it gets everything, in order, once it
// reads.
func TestTellAppNotReading(t *testing.T) {
	r := newForwardRig(t, 1)
	c := r.c
	fillApp(t, r)
	replies := &batch{}
	replies.copied()
	replies.b = c.errorReply(replies.b, 3, errNoServer, "test")
	done := make(chan struct{})
	go func() { c.tell(replies); close(done) }()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("tell still waits %s after it began, for an app that does not read", waitLimit)
	}
	// The app reads: the bus's signals, then the keeper's error.
	var h header
	app := newSock(r.app)
	for last := byte(0); last != typeError; {
		msg, _, err := app.next()
		if err != nil {
			t.Fatal(err)
		}
		if msg == nil {
			if err := app.fill(true); err != nil {
				t.Fatalf("the app, reading: %v", err)
			}
			continue
		}
		if err := parseHeader(msg, &h); err != nil {
			t.Fatal(err)
		}
		if h.typ == typeSignal && last == typeError {
			t.Fatal("a signal after the keeper's error: out of order")
		}
		last = h.typ
	}
	c.close()
	c.k.wg.Wait()
}

// TestTellPastQuota: what the keeper owes an app that does not read is
// bounded; past maxOwedBatches the app is disconnected, as a bus
// disconnects a client that cannot take a reply it asked for, and
// nothing the keeper did for it is left waiting.
func TestTellPastQuota(t *testing.T) {
	r := newForwardRig(t, 1)
	c := r.c
	fillApp(t, r)
	for i := range maxOwedBatches + 1 {
		replies := &batch{}
		replies.copied()
		replies.b = c.errorReply(replies.b, uint32(i+1), errNoServer, "test")
		c.tell(replies)
	}
	c.k.wg.Wait() // the drain, the write left to a goroutine, the close
	c.mu.Lock()
	state := c.state
	c.mu.Unlock()
	if state != stClosed {
		t.Errorf("the app owed more than %d batches is still connected (state %d)", maxOwedBatches, state)
	}
}

// TestHeaderDoesNotAllocateItsClaim: a header announcing a body of 100 MiB
// costs the keeper the bytes that came, not the bytes claimed, so that a
// few such headers cannot take its memory.
func TestHeaderDoesNotAllocateItsClaim(t *testing.T) {
	a, b := socketPair(t)
	s := newSock(a)
	hdr := make([]byte, 16)
	hdr[0], hdr[1], hdr[3] = 'l', 1, 1              // little-endian method call, version 1
	binary.LittleEndian.PutUint32(hdr[4:], 100<<20) // body length
	binary.LittleEndian.PutUint32(hdr[8:], 1)       // serial
	binary.LittleEndian.PutUint32(hdr[12:], 0)      // header fields: none
	if _, err := b.Write(append(hdr, make([]byte, 1000)...)); err != nil {
		t.Fatal(err)
	}
	// Two reads: the second knows the length from the first's bytes.
	if err := s.fill(true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := s.fill(true); err != nil {
		t.Fatal(err)
	}
	if len(s.buf) > 2*readSize {
		t.Errorf("after 1016 bytes of a message that claims 100 MiB, the read buffer is %d bytes", len(s.buf))
	}
}

// TestCloseWhileReadingFDs: a socket closed by one goroutine (the
// replay's clean-up, toDown) while its reader receives messages that
// carry fds: every fd received is closed once, by one of the two, and the
// two never touch the list of fds unordered (go test -race). close used
// to close the unclaimed fds outside the socket's lock, racing the
// reader's append and its takeFDs: an fd closed twice may be another
// connection's by the second close.
func TestCloseWhileReadingFDs(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	msg := withUnixFDs(t, appendMessage(nil, typeSignal, flagNoReplyExpected, 5, &fields{
		path: "/org/example/Obj", iface: "org.example.Iface", member: "Sig", sender: ":1.7", dest: ":1.1",
	}, nil), 1)
	for round := range 50 {
		a, b := socketPair(t)
		s := newSock(a)
		if err := s.block(); err != nil {
			t.Fatal(err)
		}
		const n = 64
		go func() {
			for range n {
				if _, _, err := b.WriteMsgUnix(msg, unix.UnixRights(p[0]), nil); err != nil {
					return
				}
			}
		}()
		first := make(chan struct{})
		read := make(chan struct{})
		go func() {
			defer close(read)
			for got := 0; ; {
				if err := s.fill(true); err != nil {
					return
				}
				for {
					m, _, err := s.next()
					if err != nil || m == nil {
						break
					}
					fds, err := s.takeFDs(nil, 1)
					if err != nil {
						return
					}
					closeFDs(fds)
					if got++; got == 1 {
						close(first)
					}
				}
			}
		}()
		<-first
		s.close()
		<-read
		b.Close()
		if refs := pipeRefs(t, p[1]); refs != 2 {
			t.Fatalf("round %d: %d fds of the pipe open after the close, want the test's 2", round, refs)
		}
	}
}
