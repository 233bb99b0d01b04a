package relaunch

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/watcher/bustest"
)

// fakeServer is a notification server that answers every notification with
// the action in choose, or closes it if choose is "".
type fakeServer struct {
	conn   *dbus.Conn
	choose string
	got    chan string // summaries
}

func (f *fakeServer) Notify(app string, replaces uint32, icon, summary, body string, actions []string,
	hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	const id = 7
	f.got <- summary
	go func() {
		if f.choose != "" {
			f.conn.Emit(notifyPath, notifyName+".ActionInvoked", uint32(id), f.choose)
		} else {
			f.conn.Emit(notifyPath, notifyName+".NotificationClosed", uint32(id), uint32(2))
		}
	}()
	return id, nil
}

func (f *fakeServer) CloseNotification(id uint32) *dbus.Error { return nil }

func startFakeServer(t *testing.T, bus *bustest.Bus, choose string) *fakeServer {
	t.Helper()
	conn, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f := &fakeServer{conn: conn, choose: choose, got: make(chan string, 4)}
	if err := conn.Export(f, notifyPath, notifyName); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(notifyName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("request name: %v %v", reply, err)
	}
	return f
}

func TestDesktopNotifier(t *testing.T) {
	bus := bustest.New(t)
	n := &DesktopNotifier{Address: bus.Address, Wait: 200 * time.Millisecond}
	ctx := context.Background()

	t.Run("no server", func(t *testing.T) {
		_, err := n.Notify(ctx, "t", "b", nil)
		if !errors.Is(err, ErrNoNotificationServer) {
			t.Fatalf("Notify = %v, want ErrNoNotificationServer", err)
		}
	})
	t.Run("server appears while waiting", func(t *testing.T) {
		n := &DesktopNotifier{Address: bus.Address, Wait: 20 * time.Second}
		type answer struct {
			key string
			err error
		}
		res := make(chan answer, 1)
		go func() {
			k, err := n.Notify(ctx, "title", "body", []string{"relaunch", "Relaunch"})
			res <- answer{k, err}
		}()
		// Start the server only once the notifier waits for it: its
		// NameOwnerChanged match is in place when it has connected.
		waitForConnections(t, bus, 1)
		f := startFakeServer(t, bus, "relaunch")
		if s := <-f.got; s != "title" {
			t.Errorf("summary %q", s)
		}
		if a := <-res; a.err != nil || a.key != "relaunch" {
			t.Errorf("Notify = %q, %v; want relaunch", a.key, a.err)
		}
		f.conn.Close()
	})
}

// waitForConnections waits until at least n clients are on the bus (their
// unique names), by watching the bus from a connection of its own.
func waitForConnections(t *testing.T, bus *bustest.Bus, n int) {
	t.Helper()
	conn, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(waitLimit)
	sig := make(chan *dbus.Signal, 16)
	conn.Signal(sig)
	conn.AddMatchSignal(dbus.WithMatchMember("NameOwnerChanged"))
	for time.Now().Before(deadline) {
		var names []string
		conn.BusObject().Call(busDaemon+".ListNames", 0).Store(&names)
		count := 0
		for _, name := range names {
			if name[0] == ':' && name != conn.Names()[0] {
				count++
			}
		}
		if count >= n {
			return
		}
		select {
		case _, ok := <-sig:
			if !ok {
				t.Fatal("connection to the test bus closed")
			}
		case <-time.After(time.Until(deadline)):
		}
	}
	t.Fatalf("fewer than %d clients on the bus", n)
}

// stickyServer is a notification server that keeps every notification on
// the screen until it is told to close it: it never answers by itself.
type stickyServer struct {
	shown  chan string // summaries
	closed chan uint32 // the ids CloseNotification was called with
}

const stickyID = 9

func (s *stickyServer) Notify(app string, replaces uint32, icon, summary, body string, actions []string,
	hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	s.shown <- summary
	return stickyID, nil
}

func (s *stickyServer) CloseNotification(id uint32) *dbus.Error {
	s.closed <- id
	return nil
}

func startStickyServer(t *testing.T, bus *bustest.Bus) *stickyServer {
	t.Helper()
	conn, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &stickyServer{shown: make(chan string, 4), closed: make(chan uint32, 4)}
	if err := conn.Export(s, notifyPath, notifyName); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(notifyName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("request name: %v %v", reply, err)
	}
	return s
}

// onLog is a log handler that tells, on a channel, that a record with its
// message was logged.
type onLog struct {
	slog.Handler
	msg string
	ch  chan struct{}
}

func (h onLog) Enabled(context.Context, slog.Level) bool { return true }

func (h onLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h onLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return onLog{h.Handler.WithAttrs(attrs), h.msg, h.ch}
}

func (h onLog) WithGroup(name string) slog.Handler {
	return onLog{h.Handler.WithGroup(name), h.msg, h.ch}
}

// waitingNotifier is a DesktopNotifier for bus whose waits for a
// notification server are told on the returned channel.
func waitingNotifier(t *testing.T, bus *bustest.Bus) (*DesktopNotifier, <-chan struct{}) {
	waiting := make(chan struct{}, 1)
	log := slog.New(onLog{testLogger(t).Handler(), "waiting for a notification server", waiting})
	return &DesktopNotifier{Address: bus.Address, Wait: time.Minute, Log: log}, waiting
}

type notifyResult struct {
	key string
	err error
}

// notifyAsync runs n.Notify in a goroutine; its result comes on the
// returned channel.
func notifyAsync(ctx context.Context, n *DesktopNotifier) <-chan notifyResult {
	res := make(chan notifyResult, 1)
	go func() {
		key, err := n.Notify(ctx, "title", "body", []string{"relaunch", "Relaunch"})
		res <- notifyResult{key, err}
	}()
	return res
}

// within returns the next value of ch, failing the test after waitLimit.
func within[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("%s: not within %s", what, waitLimit)
		var zero T
		return zero
	}
}

// The session bus going away (a restart, a crash) while Notify waits for a
// notification server, or for the answer to a notification on the screen,
// ends Notify with ErrSessionBusLost. godbus closes the connection's signal
// channel then; reading it as if open was a nil pointer panic that killed
// the daemon (issue 14).
func TestNotifySessionBusLost(t *testing.T) {
	for _, stop := range []struct {
		name string
		stop func(*bustest.Bus)
	}{
		{"SIGTERM", (*bustest.Bus).Stop},
		{"SIGKILL", (*bustest.Bus).Kill},
	} {
		t.Run("waiting for a server/"+stop.name, func(t *testing.T) {
			bus := bustest.New(t)
			n, waiting := waitingNotifier(t, bus)
			res := notifyAsync(context.Background(), n)
			within(t, "the notifier waiting for a server", waiting)
			stop.stop(bus)
			r := within(t, "Notify to return", res)
			if !errors.Is(r.err, ErrSessionBusLost) {
				t.Errorf("Notify = %q, %v; want ErrSessionBusLost", r.key, r.err)
			}
		})
		t.Run("notification open/"+stop.name, func(t *testing.T) {
			bus := bustest.New(t)
			srv := startStickyServer(t, bus)
			n, _ := waitingNotifier(t, bus)
			res := notifyAsync(context.Background(), n)
			if s := within(t, "the notification shown", srv.shown); s != "title" {
				t.Errorf("summary %q", s)
			}
			stop.stop(bus)
			r := within(t, "Notify to return", res)
			if !errors.Is(r.err, ErrSessionBusLost) {
				t.Errorf("Notify = %q, %v; want ErrSessionBusLost", r.key, r.err)
			}
		})
	}
	t.Run("bus down", func(t *testing.T) {
		bus := bustest.New(t)
		bus.Stop()
		n, _ := waitingNotifier(t, bus)
		if _, err := n.Notify(context.Background(), "t", "b", nil); !errors.Is(err, ErrNoSessionBus) {
			t.Errorf("Notify = %v, want ErrNoSessionBus", err)
		}
	})
}

// A Notify whose ctx ends takes its notification off the screen, and one
// whose ctx ends while it waits for a server returns ctx's error. godbus
// closes a connection made with a context when that context ends: the
// connection must not be tied to ctx, or the close is never sent and the
// wait reads a closed signal channel.
func TestNotifyContextEnds(t *testing.T) {
	t.Run("waiting for a server", func(t *testing.T) {
		bus := bustest.New(t)
		n, waiting := waitingNotifier(t, bus)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res := notifyAsync(ctx, n)
		within(t, "the notifier waiting for a server", waiting)
		cancel()
		if r := within(t, "Notify to return", res); !errors.Is(r.err, context.Canceled) {
			t.Errorf("Notify = %q, %v; want context.Canceled", r.key, r.err)
		}
	})
	t.Run("notification open", func(t *testing.T) {
		bus := bustest.New(t)
		srv := startStickyServer(t, bus)
		n, _ := waitingNotifier(t, bus)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res := notifyAsync(ctx, n)
		within(t, "the notification shown", srv.shown)
		cancel()
		if id := within(t, "the notification closed", srv.closed); id != stickyID {
			t.Errorf("CloseNotification(%d), want %d", id, stickyID)
		}
		if r := within(t, "Notify to return", res); !errors.Is(r.err, context.Canceled) {
			t.Errorf("Notify = %q, %v; want context.Canceled", r.key, r.err)
		}
	})
}
