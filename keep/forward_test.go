package keep

import (
	"io"
	"log/slog"
	"net"
	"testing"
)

// forwardRig is a live connection of the keeper between two socket pairs:
// app is the app's end, bus the bus's.
type forwardRig struct {
	c        *conn
	app, bus *net.UnixConn
	call     []byte // a call from the app to a peer
	reply    []byte // the peer's reply
	buf      []byte
}

func newForwardRig(t testing.TB, calls int) *forwardRig {
	a, app := socketPair(t)
	b, bus := socketPair(t)
	k := New(Config{Bus: "session", Logger: slog.New(slog.DiscardHandler)})
	c := newConn(k, a)
	c.state, c.up, c.stable, c.current = stLive, newSock(b), ":1.1", ":1.1"
	r := &forwardRig{c: c, app: app, bus: bus, buf: make([]byte, 1<<16)}
	for i := range calls {
		w := writer{}
		w.str("hello")
		r.call = appendMessage(r.call, typeMethodCall, 0, uint32(10+i), &fields{
			path: "/org/example/Obj", iface: "org.example.Iface", member: "Ping", dest: ":1.7", sig: "s",
		}, w.b)
		r.reply = appendMessage(r.reply, typeMethodReturn, 0, uint32(100+i), &fields{
			replySerial: uint32(10 + i), dest: ":1.1", sender: ":1.7", sig: "s",
		}, w.b)
	}
	return r
}

// roundTrip sends the calls through the keeper to the bus and the replies
// back, as the two forwarding goroutines would, in this goroutine.
func (r *forwardRig) roundTrip(t testing.TB) {
	if _, err := r.app.Write(r.call); err != nil {
		t.Fatal(err)
	}
	if err := r.c.app.fill(true); err != nil {
		t.Fatal(err)
	}
	if err := r.c.fromApp(true); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r.bus, r.buf[:len(r.call)]); err != nil {
		t.Fatal(err)
	}
	if _, err := r.bus.Write(r.reply); err != nil {
		t.Fatal(err)
	}
	if err := r.c.up.fill(true); err != nil {
		t.Fatal(err)
	}
	if err := r.c.fromBus(r.c.up, true); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r.app, r.buf[:len(r.reply)]); err != nil {
		t.Fatal(err)
	}
}

// TestForwardAllocs: forwarding in the steady state allocates nothing,
// for a single call and for a batch of them.
func TestForwardAllocs(t *testing.T) {
	for _, calls := range []int{1, 16} {
		r := newForwardRig(t, calls)
		r.roundTrip(t) // warm up: maps and buffers reach their size
		if n := testing.AllocsPerRun(200, func() { r.roundTrip(t) }); n != 0 {
			t.Errorf("%d calls: %.1f allocations per round trip, want 0", calls, n)
		}
		if len(r.c.pending) != 0 {
			t.Errorf("%d calls pending after their replies", len(r.c.pending))
		}
	}
}

// TestForwardRewriteAllocs: after a restart, when names are mapped, the
// rewriting of destinations and senders allocates nothing either.
func TestForwardRewriteAllocs(t *testing.T) {
	r := newForwardRig(t, 4)
	r.c.current = ":1.50"
	r.c.k.names.Store(&nameMap{
		toStable:  map[string]string{":1.50": ":1.1", ":1.51": ":1.7"},
		toCurrent: map[string]string{":1.1": ":1.50", ":1.7": ":1.51"},
	})
	r.reply = r.reply[:0]
	for i := range 4 {
		w := writer{}
		w.str("hello")
		r.reply = appendMessage(r.reply, typeMethodReturn, 0, uint32(100+i), &fields{
			replySerial: uint32(10 + i), dest: ":1.50", sender: ":1.51", sig: "s",
		}, w.b)
	}
	r.roundTrip(t)
	var h header
	if err := parseHeader(r.buf[:len(r.reply)/4], &h); err != nil || h.dest.str(r.buf) != ":1.1" || h.sender.str(r.buf) != ":1.7" {
		t.Fatalf("the app got dest %q sender %q (%v), want :1.1 and :1.7", h.dest.str(r.buf), h.sender.str(r.buf), err)
	}
	if n := testing.AllocsPerRun(200, func() { r.roundTrip(t) }); n != 0 {
		t.Errorf("%.1f allocations per round trip with names mapped, want 0", n)
	}
}

// BenchmarkForward is the keeper's forwarding path alone: one call out,
// one reply back, through real sockets, without goroutine hand-offs.
func BenchmarkForward(b *testing.B) {
	for _, calls := range []int{1, 16} {
		b.Run(map[int]string{1: "single", 16: "batch16"}[calls], func(b *testing.B) {
			r := newForwardRig(b, calls)
			r.roundTrip(b)
			b.ReportAllocs()
			b.SetBytes(int64(len(r.call) + len(r.reply)))
			for b.Loop() {
				r.roundTrip(b)
			}
		})
	}
}
