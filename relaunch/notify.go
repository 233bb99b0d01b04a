package relaunch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	notifyName  = "org.freedesktop.Notifications"
	notifyPath  = dbus.ObjectPath("/org/freedesktop/Notifications")
	busDaemon   = "org.freedesktop.DBus"
	callTimeout = 5 * time.Second
)

// ErrNoNotificationServer: no notification server appeared on the session
// bus within DesktopNotifier.Wait.
var ErrNoNotificationServer = errors.New("relaunch: no notification server on the session bus")

// DesktopNotifier shows notifications through org.freedesktop.Notifications
// on the session bus. Each Notify uses a private connection to the address
// current at that moment, because the session bus may just have restarted
// (a shared connection would point at the old one), and closes it after.
type DesktopNotifier struct {
	// Address returns the session bus address.
	Address func() string
	// AppName is the sender shown by the server; default "busmedic".
	AppName string
	// Icon is an icon name or path; may be empty.
	Icon string
	// Wait bounds the wait for a notification server to appear (the
	// server itself may be an app being relaunched); default 30s.
	Wait time.Duration
}

// Notify shows a notification with actions (key, label pairs) and waits
// until the user picks one (its key is returned), the notification is
// closed ("" is returned) or ctx ends.
func (n *DesktopNotifier) Notify(ctx context.Context, title, body string, actions []string) (string, error) {
	addr := ""
	if n.Address != nil {
		addr = n.Address()
	}
	if addr == "" {
		return "", errors.New("notify: session bus address unknown")
	}
	conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("notify: connect to session bus: %w", err)
	}
	defer conn.Close()
	signals := make(chan *dbus.Signal, 16)
	conn.Signal(signals)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	// Subscribe before looking, so that nothing is missed in between.
	if err := conn.AddMatchSignalContext(cctx, dbus.WithMatchInterface(notifyName), dbus.WithMatchObjectPath(notifyPath)); err != nil {
		return "", fmt.Errorf("notify: subscribe: %w", err)
	}
	if err := conn.AddMatchSignalContext(cctx, dbus.WithMatchSender(busDaemon), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, notifyName)); err != nil {
		return "", fmt.Errorf("notify: subscribe: %w", err)
	}
	if err := n.awaitServer(ctx, conn, signals); err != nil {
		return "", err
	}
	appName := n.AppName
	if appName == "" {
		appName = "busmedic"
	}
	var id uint32
	call := conn.Object(notifyName, notifyPath).CallWithContext(cctx, notifyName+".Notify", 0,
		appName, uint32(0), n.Icon, title, body, actions, map[string]dbus.Variant{}, int32(-1))
	if err := call.Store(&id); err != nil {
		return "", fmt.Errorf("notify: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			// Take it off the screen: nobody is waiting for the answer.
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Object(notifyName, notifyPath).CallWithContext(closeCtx, notifyName+".CloseNotification", 0, id)
			cancel()
			return "", ctx.Err()
		case <-conn.Context().Done():
			return "", errors.New("notify: session bus connection lost")
		case s := <-signals:
			switch {
			case s.Name == notifyName+".ActionInvoked" && len(s.Body) == 2 && s.Body[0] == id:
				key, _ := s.Body[1].(string)
				return key, nil
			case s.Name == notifyName+".NotificationClosed" && len(s.Body) >= 1 && s.Body[0] == id:
				return "", nil
			}
		}
	}
}

// awaitServer returns once notifyName has an owner or can be activated.
func (n *DesktopNotifier) awaitServer(ctx context.Context, conn *dbus.Conn, signals <-chan *dbus.Signal) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var has bool
	if err := conn.BusObject().CallWithContext(cctx, busDaemon+".NameHasOwner", 0, notifyName).Store(&has); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	if has {
		return nil
	}
	var activatable []string
	if err := conn.BusObject().CallWithContext(cctx, busDaemon+".ListActivatableNames", 0).Store(&activatable); err == nil {
		for _, a := range activatable {
			if a == notifyName {
				return nil // the bus starts it on the call
			}
		}
	}
	wait := n.Wait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("%w within %s", ErrNoNotificationServer, shortDuration(wait))
		case s := <-signals:
			if s.Name == busDaemon+".NameOwnerChanged" && len(s.Body) == 3 && s.Body[0] == notifyName && s.Body[2] != "" {
				return nil
			}
		}
	}
}
