package relaunch

import (
	"context"
	"errors"
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
		case <-sig:
		case <-time.After(time.Until(deadline)):
		}
	}
	t.Fatalf("fewer than %d clients on the bus", n)
}
