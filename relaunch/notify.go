package relaunch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// ErrSessionBusLost: the connection to the session bus closed (the bus
// stopped, crashed or restarted) while a notification waited for a server
// or for the user's answer; the notification went with it. A caller that
// still wants an answer asks again once the session bus is back.
var ErrSessionBusLost = errors.New("session bus connection lost")

// ErrNoSessionBus: the session bus could not be reached to show a
// notification, as while it restarts. Like ErrSessionBusLost, it is worth
// trying again once the bus is back.
var ErrNoSessionBus = errors.New("session bus not reachable")

// DesktopNotifier shows notifications through org.freedesktop.Notifications
// on the session bus. Each Notify uses a private connection to the address
// current at that moment, because the session bus may just have restarted
// (a shared connection would point at the old one), and closes it after.
//
// A session bus that goes away while a notification waits ends that Notify
// with an error wrapping ErrSessionBusLost; it never takes the caller down.
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
	// Log, if set, gets the notifier's debug detail (such as the wait for
	// a notification server).
	Log *slog.Logger
}

// Notify shows a notification with actions (key, label pairs) and waits
// until the user picks one (its key is returned), the notification is
// closed ("" is returned) or ctx ends (then the notification is taken off
// the screen). A session bus lost meanwhile is an error wrapping
// ErrSessionBusLost, one that cannot be reached an error wrapping
// ErrNoSessionBus.
func (n *DesktopNotifier) Notify(ctx context.Context, title, body string, actions []string) (string, error) {
	addr := ""
	if n.Address != nil {
		addr = n.Address()
	}
	if addr == "" {
		return "", errors.New("notify: session bus address unknown")
	}
	conn, err := connectSession(ctx, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	signals := make(chan *dbus.Signal, 16)
	conn.Signal(signals)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	// Subscribe before looking, so that nothing is missed in between.
	if err := conn.AddMatchSignalContext(cctx, dbus.WithMatchInterface(notifyName), dbus.WithMatchObjectPath(notifyPath)); err != nil {
		return "", callErr(ctx, conn, "subscribe", err)
	}
	if err := conn.AddMatchSignalContext(cctx, dbus.WithMatchSender(busDaemon), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, notifyName)); err != nil {
		return "", callErr(ctx, conn, "subscribe", err)
	}
	if err := n.awaitServer(ctx, conn, signals); err != nil {
		return "", err
	}
	appName := n.AppName
	if appName == "" {
		appName = "busmedic"
	}
	// Not cut short by ctx: a notification shown is closed below when ctx
	// has ended, which needs its id.
	nctx, ncancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer ncancel()
	var id uint32
	call := conn.Object(notifyName, notifyPath).CallWithContext(nctx, notifyName+".Notify", 0,
		appName, uint32(0), n.Icon, title, body, actions, map[string]dbus.Variant{}, int32(-1))
	if err := call.Store(&id); err != nil {
		return "", callErr(ctx, conn, "Notify", err)
	}
	for {
		select {
		case <-ctx.Done():
			// Take it off the screen: nobody is waiting for the answer.
			// The connection outlives ctx for this (see connectSession).
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Object(notifyName, notifyPath).CallWithContext(closeCtx, notifyName+".CloseNotification", 0, id)
			cancel()
			return "", fmt.Errorf("notify: %w", ctx.Err())
		case <-conn.Context().Done():
			return "", fmt.Errorf("notify: %w", ErrSessionBusLost)
		case s, ok := <-signals:
			if !ok {
				// godbus closes the channel when the connection closes.
				return "", fmt.Errorf("notify: %w", ErrSessionBusLost)
			}
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

// connectSession opens a private connection to the session bus at addr. ctx bounds
// the connecting, not the connection: godbus closes a connection whose
// context ends, and Notify still needs it to take its notification off the
// screen when ctx ends.
func connectSession(ctx context.Context, addr string) (*dbus.Conn, error) {
	life, end := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, end) // ends a connect that hangs
	conn, err := dbus.Connect(addr, dbus.WithContext(life))
	connecting := stop()
	switch {
	case err != nil && ctx.Err() != nil:
		end()
		return nil, fmt.Errorf("notify: connect to session bus: %w", ctx.Err())
	case err != nil:
		end()
		return nil, fmt.Errorf("notify: connect to session bus: %w: %w", ErrNoSessionBus, err)
	case !connecting:
		// ctx ended just as the connection was made.
		conn.Close()
		return nil, fmt.Errorf("notify: connect to session bus: %w", ctx.Err())
	}
	// life needs no cancel from here: its parent never ends, so nothing
	// holds on to it, and conn.Close ends the connection's own context.
	return conn, nil
}

// callErr wraps the error of a call on conn: ctx's error when ctx ended,
// ErrSessionBusLost when the connection closed meanwhile.
func callErr(ctx context.Context, conn *dbus.Conn, what string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("notify: %s: %w", what, ctx.Err())
	case conn.Context().Err() != nil || errors.Is(err, dbus.ErrClosed):
		return fmt.Errorf("notify: %s: %w (%v)", what, ErrSessionBusLost, err)
	}
	return fmt.Errorf("notify: %s: %w", what, err)
}

// awaitServer returns once notifyName has an owner or can be activated, or
// with an error once ctx ends, Wait passes or the connection is lost.
func (n *DesktopNotifier) awaitServer(ctx context.Context, conn *dbus.Conn, signals <-chan *dbus.Signal) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var has bool
	if err := conn.BusObject().CallWithContext(cctx, busDaemon+".NameHasOwner", 0, notifyName).Store(&has); err != nil {
		return callErr(ctx, conn, "is there a notification server", err)
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
	if n.Log != nil {
		n.Log.Debug("waiting for a notification server", "wait", wait)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("notify: wait for a notification server: %w", ctx.Err())
		case <-t.C:
			return fmt.Errorf("%w within %s", ErrNoNotificationServer, shortDuration(wait))
		case <-conn.Context().Done():
			return fmt.Errorf("notify: wait for a notification server: %w", ErrSessionBusLost)
		case s, ok := <-signals:
			if !ok {
				// godbus closes the channel when the connection closes.
				return fmt.Errorf("notify: wait for a notification server: %w", ErrSessionBusLost)
			}
			if s.Name == busDaemon+".NameOwnerChanged" && len(s.Body) == 3 && s.Body[0] == notifyName && s.Body[2] != "" {
				return nil
			}
		}
	}
}
