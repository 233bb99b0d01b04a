package relaunch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
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

// Notice is a desktop notification, for DesktopNotifier.Show and
// ShowNotice.
type Notice struct {
	Title, Body string
	// Critical marks a notification about something that needs the user:
	// a recovery that failed, an app that did not come back. It is sent
	// with urgency critical (2), which servers keep on the screen and
	// highlight; any other with urgency normal (1).
	Critical bool
	// Actions are its buttons, in order.
	Actions []Action
}

// Action is a button of a Notice.
type Action struct {
	// Key is what Show returns when the button is picked; Label is what
	// the button says.
	Key, Label string
	// Command is the command line that does what the button does, such
	// as "busmedic restart-bus session": where the notification server
	// shows no buttons, the body tells it instead ("Restart now: run
	// busmedic restart-bus session"). "" for a button that needs nothing
	// done, such as "Not now".
	Command string
}

// pairs returns the actions as org.freedesktop.Notifications.Notify takes
// them: key, label, key, label…
func (n Notice) pairs() []string {
	var out []string
	for _, a := range n.Actions {
		out = append(out, a.Key, a.Label)
	}
	return out
}

// noticeActions turns Notify's key, label pairs into actions (a lone key
// at the end is its own label).
func noticeActions(pairs []string) []Action {
	var out []Action
	for i := 0; i < len(pairs); i += 2 {
		a := Action{Key: pairs[i], Label: pairs[i]}
		if i+1 < len(pairs) {
			a.Label = pairs[i+1]
		}
		out = append(out, a)
	}
	return out
}

// bodyWithCommands is body with a line for each action that has a
// command: "Restart now: run busmedic restart-bus session".
func bodyWithCommands(body string, actions []Action) string {
	for _, a := range actions {
		if a.Command == "" {
			continue
		}
		if body != "" {
			body += "\n"
		}
		body += a.Label + ": run " + a.Command
	}
	return body
}

// markup escapes the characters that body markup gives a meaning to.
var markup = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// ShowNotice shows notice through n and returns the key of the action
// picked, as Notifier.Notify does. A Notifier that takes a whole Notice
// (DesktopNotifier) gets it, urgency and commands with it; any other its
// title, body and actions.
func ShowNotice(ctx context.Context, n Notifier, notice Notice) (string, error) {
	if s, ok := n.(interface {
		Show(ctx context.Context, notice Notice) (string, error)
	}); ok {
		return s.Show(ctx, notice)
	}
	return n.Notify(ctx, notice.Title, notice.Body, notice.pairs())
}

// DesktopNotifier shows notifications through org.freedesktop.Notifications
// on the session bus. Each notification uses a private connection to the
// address current at that moment, because the session bus may just have
// restarted (a shared connection would point at the old one), and closes
// it after.
//
// Every notification carries the hints servers use: its urgency, and the
// desktop entry of its sender (DesktopEntry). Buttons are sent only to a
// server whose GetCapabilities lists "actions"; to another, the body tells
// the command to run instead (Action.Command). The capabilities are asked
// once per server: a new one, as after a bus restart, is asked again.
//
// A session bus that goes away while a notification waits ends that Show
// with an error wrapping ErrSessionBusLost; it never takes the caller down.
type DesktopNotifier struct {
	// Address returns the session bus address.
	Address func() string
	// AppName is the sender shown by the server; default "busmedic".
	AppName string
	// Icon is the sender's icon: a name in the icon theme or a file://
	// URI; may be empty.
	Icon string
	// DesktopEntry is the sender's desktop file id without ".desktop"
	// (the "desktop-entry" hint: servers take the app's name and icon
	// from it, and group its notifications); may be empty.
	DesktopEntry string
	// Wait bounds the wait for a notification server to appear (the
	// server itself may be an app being relaunched); default 30s.
	Wait time.Duration
	// Log, if set, gets the notifier's debug detail (such as the wait for
	// a notification server).
	Log *slog.Logger

	mu         sync.Mutex
	capsServer string   // the server caps are of: bus id/unique name
	caps       []string // its capabilities
}

// Notify shows a notification of normal urgency with actions (key, label
// pairs), as Show does.
func (n *DesktopNotifier) Notify(ctx context.Context, title, body string, actions []string) (string, error) {
	return n.Show(ctx, Notice{Title: title, Body: body, Actions: noticeActions(actions)})
}

// Show shows notice and waits until the user picks an action (its key is
// returned), the notification is closed ("" is returned) or ctx ends (then
// the notification is taken off the screen). Where nothing can be picked
// (no actions, or a server that shows none) it returns "" once the
// notification is shown, which stays until the user or the server closes
// it. A session bus lost meanwhile is an error wrapping ErrSessionBusLost,
// one that cannot be reached an error wrapping ErrNoSessionBus.
func (n *DesktopNotifier) Show(ctx context.Context, notice Notice) (string, error) {
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
	caps, known, err := n.capabilities(ctx, conn)
	if err != nil {
		return "", err
	}
	// A server that would not say what it shows (one that lacks
	// GetCapabilities) gets the buttons and the commands both.
	clickable := len(notice.Actions) > 0 && (!known || slices.Contains(caps, "actions"))
	body := notice.Body
	var actions []string
	if clickable {
		actions = notice.pairs()
	}
	if !clickable || !known {
		body = bodyWithCommands(body, notice.Actions)
	}
	if slices.Contains(caps, "body-markup") {
		body = markup.Replace(body)
	}
	urgency := byte(1)
	if notice.Critical {
		urgency = 2
	}
	hints := map[string]dbus.Variant{"urgency": dbus.MakeVariant(urgency)}
	if n.DesktopEntry != "" {
		hints["desktop-entry"] = dbus.MakeVariant(n.DesktopEntry)
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
		appName, uint32(0), n.Icon, notice.Title, body, actions, hints, int32(-1))
	if err := call.Store(&id); err != nil {
		return "", callErr(ctx, conn, "Notify", err)
	}
	if !clickable {
		return "", nil
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

// capabilities returns the capabilities of the notification server on
// conn's bus. A server is asked once: it is its unique name on one bus
// instance (the bus id), as a server that comes after a bus restart may
// differ, even if it gets the same unique name. known is false when the
// server would not answer (one that does not implement GetCapabilities);
// that is not kept, and asked again next time.
func (n *DesktopNotifier) capabilities(ctx context.Context, conn *dbus.Conn) (caps []string, known bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var busID string
	if err := conn.BusObject().CallWithContext(cctx, busDaemon+".GetId", 0).Store(&busID); err != nil {
		return nil, false, callErr(ctx, conn, "bus id", err)
	}
	server := func() string {
		var owner string
		if conn.BusObject().CallWithContext(cctx, busDaemon+".GetNameOwner", 0, notifyName).Store(&owner) != nil {
			return "" // not started yet: the bus starts it on the call
		}
		return busID + "/" + owner
	}
	key := server()
	n.mu.Lock()
	if key != "" && key == n.capsServer {
		caps := n.caps
		n.mu.Unlock()
		return caps, true, nil
	}
	n.mu.Unlock()
	if err := conn.Object(notifyName, notifyPath).CallWithContext(cctx, notifyName+".GetCapabilities", 0).Store(&caps); err != nil {
		if ctx.Err() != nil || conn.Context().Err() != nil || errors.Is(err, dbus.ErrClosed) {
			return nil, false, callErr(ctx, conn, "GetCapabilities", err)
		}
		if n.Log != nil {
			n.Log.Debug("the notification server does not tell its capabilities", "err", err)
		}
		return nil, false, nil
	}
	if key == "" {
		key = server() // the call started it
	}
	if key != "" {
		n.mu.Lock()
		n.capsServer, n.caps = key, caps
		n.mu.Unlock()
	}
	if n.Log != nil {
		n.Log.Debug("notification server capabilities", "server", key, "capabilities", caps)
	}
	return caps, true, nil
}

// connectSession opens a private connection to the session bus at addr. ctx bounds
// the connecting, not the connection: godbus closes a connection whose
// context ends, and Show still needs it to take its notification off the
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
