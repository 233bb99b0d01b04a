package bustest

import (
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// The notification server's D-Bus name and object path.
const (
	notificationsName = "org.freedesktop.Notifications"
	notificationsPath = dbus.ObjectPath("/org/freedesktop/Notifications")
)

// Notification is one notification a Notifications server was sent, with
// every argument of org.freedesktop.Notifications.Notify.
type Notification struct {
	ID                              uint32
	AppName, AppIcon, Summary, Body string
	Actions                         []string // key, label pairs
	Hints                           map[string]dbus.Variant
	Timeout                         int32
}

// Notifications is a notification server on a test bus that shows nothing
// and records what it is sent: a real org.freedesktop.Notifications in one
// line, with the capabilities the test gives it (say "actions", or not).
// A notification stays open until the test answers it (Invoke, Dismiss)
// or its sender closes it.
type Notifications struct {
	t    testing.TB
	conn *dbus.Conn
	caps []string
	got  chan Notification

	mu       sync.Mutex
	last     uint32
	capCalls int
	closed   []uint32
}

// StartNotifications serves org.freedesktop.Notifications on the bus with
// capabilities caps until the test ends or the bus goes away.
func (b *Bus) StartNotifications(caps ...string) *Notifications {
	b.t.Helper()
	conn, err := dbus.Connect(b.Address())
	if err != nil {
		b.t.Fatalf("bustest: notification server: connect: %v", err)
	}
	b.t.Cleanup(func() { conn.Close() })
	n := &Notifications{t: b.t, conn: conn, caps: caps, got: make(chan Notification, 64)}
	// Exported before the name is taken: a client that sees the name can
	// call at once.
	if err := conn.Export(n, notificationsPath, notificationsName); err != nil {
		b.t.Fatalf("bustest: notification server: %v", err)
	}
	reply, err := conn.RequestName(notificationsName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		b.t.Fatalf("bustest: notification server: own %s: %v, %v", notificationsName, reply, err)
	}
	return n
}

// Notify is the D-Bus method: it records the notification.
func (n *Notifications) Notify(app string, replaces uint32, icon, summary, body string, actions []string,
	hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	n.mu.Lock()
	n.last++
	id := n.last
	n.mu.Unlock()
	n.got <- Notification{ID: id, AppName: app, AppIcon: icon, Summary: summary, Body: body,
		Actions: actions, Hints: hints, Timeout: timeout}
	return id, nil
}

// CloseNotification is the D-Bus method: the sender takes a notification
// off the screen.
func (n *Notifications) CloseNotification(id uint32) *dbus.Error {
	n.mu.Lock()
	n.closed = append(n.closed, id)
	n.mu.Unlock()
	n.conn.Emit(notificationsPath, notificationsName+".NotificationClosed", id, uint32(3))
	return nil
}

// GetCapabilities is the D-Bus method: the capabilities the test gave.
func (n *Notifications) GetCapabilities() ([]string, *dbus.Error) {
	n.mu.Lock()
	n.capCalls++
	n.mu.Unlock()
	return n.caps, nil
}

// GetServerInformation is the D-Bus method.
func (n *Notifications) GetServerInformation() (name, vendor, version, specVersion string, err *dbus.Error) {
	return "bustest", "busmedic", "1", "1.2", nil
}

// Stop ends the server: its name is free when Stop returns, for another.
func (n *Notifications) Stop() {
	n.t.Helper()
	if _, err := n.conn.ReleaseName(notificationsName); err != nil {
		n.t.Fatalf("bustest: notification server: release %s: %v", notificationsName, err)
	}
	n.conn.Close()
}

// Next returns the next notification shown, failing the test if none
// comes within the package's wait limit.
func (n *Notifications) Next() Notification {
	n.t.Helper()
	t := time.NewTimer(waitLimit)
	defer t.Stop()
	select {
	case got := <-n.got:
		return got
	case <-t.C:
		n.t.Fatalf("bustest: no notification within %s", waitLimit)
		return Notification{}
	}
}

// CapabilityCalls is how often GetCapabilities was called.
func (n *Notifications) CapabilityCalls() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.capCalls
}

// Closed returns the ids CloseNotification was called with, in order.
func (n *Notifications) Closed() []uint32 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]uint32(nil), n.closed...)
}

// Invoke answers notification id with the action key, as a click on its
// button does, then closes it.
func (n *Notifications) Invoke(id uint32, key string) {
	n.t.Helper()
	n.emit(notificationsName+".ActionInvoked", id, key)
	n.emit(notificationsName+".NotificationClosed", id, uint32(2))
}

// Dismiss closes notification id as the user does (reason 2).
func (n *Notifications) Dismiss(id uint32) {
	n.t.Helper()
	n.emit(notificationsName+".NotificationClosed", id, uint32(2))
}

func (n *Notifications) emit(name string, args ...any) {
	n.t.Helper()
	if err := n.conn.Emit(notificationsPath, name, args...); err != nil {
		n.t.Fatalf("bustest: notification server: %s: %v", name, err)
	}
}
