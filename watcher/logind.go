package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	logindName    = "org.freedesktop.login1"
	logindPath    = "/org/freedesktop/login1"
	logindManager = "org.freedesktop.login1.Manager"
	logindSession = "org.freedesktop.login1.Session"
	logindUser    = "org.freedesktop.login1.User"
)

// Logind follows, on the system bus, the login session busmedic runs in and
// whether the machine is shutting down, so that a session bus that goes away
// at logout is not taken for an accident. In a systemd user unit, in no
// session, it follows the user's display session instead, whichever it is
// at the time. It also reads its user's State: when the last session of a
// user who does not linger ends, logind stops the user's manager, and with
// it dbus.service, possibly before busmedic has seen the session close (a
// session with nothing left in it is removed at once, and the user's
// Display is then none); the user is "closing" all the while. It keeps the
// last state it read: the system bus may go down with everything else.
type Logind struct {
	endpoints []endpoint
	session   string // XDG_SESSION_ID, or "" to ask by pid
	log       *slog.Logger
	// following, if set, is called each time the follower has found the
	// session to follow ("" for none) and subscribed to its changes.
	following func(session string)

	mu   sync.Mutex
	conn *dbus.Conn
	path dbus.ObjectPath
	// user is our user's object ("" if unknown), userState its last
	// State read.
	user      dbus.ObjectPath
	userState string
	state     string
	shutdown  bool
	changed   chan struct{}
}

// NewLogind returns a Logind for the system bus t and the session of this
// process (XDG_SESSION_ID, or else the session logind finds for our pid).
func NewLogind(t Target, log *slog.Logger) (*Logind, error) {
	eps, err := parseAddress(t.Address)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Logind{endpoints: eps, session: os.Getenv("XDG_SESSION_ID"), log: log.With("bus", t.Name, "of", "logind"), changed: make(chan struct{}, 1)}, nil
}

// Ending reports whether the session is ending: our session's State is
// "closing", our user's State is "closing" (every session of the user is
// closing or gone, and its manager stops unless the user lingers), or
// PrepareForShutdown(true) was seen. why says which, in words.
func (l *Logind) Ending() (ending bool, why string) {
	l.mu.Lock()
	conn, path, user, state, ustate, shutdown := l.conn, l.path, l.user, l.state, l.userState, l.shutdown
	l.mu.Unlock()
	if shutdown {
		return true, "the system is shutting down (logind PrepareForShutdown)"
	}
	// Ask again if we can: the real logind tells no change of either
	// State, and a signal may still be on its way.
	if conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		if path != "" {
			if s, err := sessionState(ctx, conn, path); err == nil {
				state = s
				l.mu.Lock()
				l.state = s
				l.mu.Unlock()
			}
		}
		if user != "" {
			if s, err := userState(ctx, conn, user); err == nil {
				ustate = s
				l.mu.Lock()
				l.userState = s
				l.mu.Unlock()
			}
		}
		cancel()
	}
	switch {
	case state == "closing":
		return true, fmt.Sprintf("the login session %s is closing (logind)", path)
	case ustate == "closing":
		return true, fmt.Sprintf("the user %s is closing: its last login session ended (logind)", user)
	}
	return false, ""
}

// State returns our session's last known logind State ("active", "online",
// "closing") or "" if unknown.
func (l *Logind) State() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// Changed gets a value whenever State or the shutdown flag changes.
func (l *Logind) Changed() <-chan struct{} { return l.changed }

// Run follows logind until ctx is done, reconnecting after the system bus
// restarts. Without logind (a container, a minimal system) it waits quietly.
func (l *Logind) Run(ctx context.Context) {
	b := newBackoff(backoffFirst, backoffMax)
	reported := false
	for ctx.Err() == nil {
		err := l.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if !reported {
			l.log.Info("logind not followed; session end is then judged by other signs", "err", err)
			reported = true
		}
		t := time.NewTimer(b.next())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (l *Logind) follow(ctx context.Context) error {
	conn, err := dialAny(ctx, l.endpoints)
	if err != nil {
		return err
	}
	defer conn.Close()
	signals := make(chan *dbus.Signal, 64)
	conn.Signal(signals)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := conn.AddMatchSignalContext(cctx, dbus.WithMatchSender(logindName), dbus.WithMatchInterface(logindManager), dbus.WithMatchMember("PrepareForShutdown")); err != nil {
		return fmt.Errorf("subscribe to PrepareForShutdown: %w", err)
	}
	// logind restarts by itself while the system bus stays up (systemd
	// updates restart it), so follow its name rather than the peer that
	// had it: a new logind may know our session by another path.
	if err := conn.AddMatchSignalContext(cctx, dbus.WithMatchSender(busName), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, logindName)); err != nil {
		return fmt.Errorf("subscribe to logind's name: %w", err)
	}
	defer func() {
		l.mu.Lock()
		l.conn = nil
		l.mu.Unlock()
	}()
	var cur followed
owners:
	for {
		// Without logind on this bus (a container, a minimal system), wait
		// for it to appear rather than retrying: each retry would be a peer
		// joining and leaving the system bus, waking everyone who watches it.
		owner, err := l.awaitLogind(ctx, conn, signals)
		if err != nil {
			return err
		}
		// A logind that has just started has announced no shutdown; one
		// that stops for a shutdown leaves the name without owner, and the
		// flag set.
		if cur, err = l.followSession(ctx, conn, cur, false); err != nil {
			return err
		}
		for {
			sig, err := nextSignal(ctx, conn, signals)
			if err != nil {
				return err
			}
			// Anyone on the system bus can send a signal named like
			// logind's, even to us alone: only logind's own count, or a
			// user could make busmedic take every bus loss for a shutdown.
			switch {
			case sig.Sender != owner && sig.Sender != busName:
			case sig.Name == busName+".NameOwnerChanged" && sig.Sender == busName && len(sig.Body) == 3 && sig.Body[0] == logindName:
				// Keep the last state read, as when the bus goes down,
				// and ask nothing of the name until it has an owner
				// again: on a real system a call would start logind.
				l.mu.Lock()
				l.conn = nil
				l.mu.Unlock()
				l.log.Info("logind left or changed hands; following its name")
				continue owners
			case sig.Name == logindManager+".PrepareForShutdown" && sig.Sender == owner && len(sig.Body) == 1:
				if v, ok := sig.Body[0].(bool); ok {
					l.log.Info("logind: PrepareForShutdown", "start", v)
					l.setState(l.State(), v)
				}
			case sig.Name == propertiesChanged && sig.Sender == owner && sig.Path == cur.session:
				// State may come as a value or only as invalidated. The
				// real logind sends neither for State (it does not emit
				// its changes), only for the session's other properties:
				// Ending asks for State when it matters.
				qctx, qcancel := context.WithTimeout(ctx, callTimeout)
				if s, err := sessionState(qctx, conn, cur.session); err == nil {
					l.setState(s, l.shutdownSeen())
				}
				qcancel()
			case sig.Name == propertiesChanged && sig.Sender == owner && cur.user != "" && sig.Path == cur.user &&
				changes(sig, logindUser, "Display"):
				// The user's display session changed: a login, or the
				// end of the display session. The signal may carry the
				// old value (logind sends it before it elects another),
				// so ask again.
				if cur, err = l.followSession(ctx, conn, cur, l.shutdownSeen()); err != nil {
					return err
				}
			}
		}
	}
}

// followed is what follow subscribed to at the current logind: the
// properties of the session followed, and, when busmedic is in no session
// of its own, those of its user, whose Display names the session to follow.
type followed struct {
	session dbus.ObjectPath // "" for none
	user    dbus.ObjectPath // "" in a session of our own
}

const propertiesChanged = "org.freedesktop.DBus.Properties.PropertiesChanged"

// followSession finds the session to follow at the current logind,
// subscribes to its properties (and, in no session of our own, to our
// user's) in place of those of old (what an earlier logind or an earlier
// Display gave, or nothing), and reads its state. shutdown is the shutdown
// flag to keep.
func (l *Logind) followSession(ctx context.Context, conn *dbus.Conn, old followed, shutdown bool) (followed, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var now followed
	var err error
	if now.session, err = l.ownSession(ctx, conn); err != nil {
		return followed{}, err
	}
	// Our user, whose State Ending reads: in a session of our own too,
	// where its end may be the first logind tells of. There it is an
	// extra: the session alone is followed if the user cannot be read.
	user, uerr := userPath(ctx, conn)
	if now.session != "" && uerr != nil {
		l.log.Debug("our user's state not followed", "err", uerr)
		user = ""
	}
	if now.session == "" {
		// In a systemd user unit (busmedic.service) busmedic belongs to
		// the user's manager, in no session: the session whose end
		// matters is the user's graphical one, which logind calls the
		// user's Display. It may start, end or change after busmedic
		// started (a lingering user's manager starts at boot, before
		// any login), so follow it: subscribe first, then read.
		if uerr != nil {
			return followed{}, uerr
		}
		now.user = user
		if err := swapMatch(ctx, conn, old.user, now.user); err != nil {
			return followed{}, fmt.Errorf("subscribe to our user's properties: %w", err)
		}
		if now.session, err = displaySession(ctx, conn, now.user); err != nil {
			return followed{}, err
		}
	} else if err := swapMatch(ctx, conn, old.user, ""); err != nil {
		return followed{}, err
	}
	if err := swapMatch(ctx, conn, old.session, now.session); err != nil {
		return followed{}, fmt.Errorf("subscribe to session properties: %w", err)
	}
	state := ""
	if now.session != "" {
		if state, err = sessionState(ctx, conn, now.session); err != nil {
			return followed{}, err
		}
	}
	us := ""
	if user != "" {
		if us, err = userState(ctx, conn, user); err != nil {
			// Ending asks again; a failure here costs nothing more.
			l.log.Debug("our user's state not read", "err", err)
		}
	}
	l.mu.Lock()
	l.conn, l.path, l.user, l.userState = conn, now.session, user, us
	l.mu.Unlock()
	l.setState(state, shutdown)
	// Said once for each session followed, not for each logind restart.
	say := l.log.Info
	if now == old {
		say = l.log.Debug
	}
	switch {
	case now.session == "":
		say("in no login session, and our user has no display session; following only a shutdown")
	case now.user != "":
		say("following our user's display session", "session", now.session, "state", state)
	default:
		say("following our login session", "session", now.session, "state", state)
	}
	if l.following != nil {
		l.following(string(now.session))
	}
	return now, nil
}

// swapMatch subscribes conn to the PropertiesChanged signals of logind's
// object now instead of those of old; "" is no object.
func swapMatch(ctx context.Context, conn *dbus.Conn, old, now dbus.ObjectPath) error {
	if old == now {
		return nil
	}
	match := func(p dbus.ObjectPath) []dbus.MatchOption {
		return []dbus.MatchOption{dbus.WithMatchSender(logindName), dbus.WithMatchObjectPath(p),
			dbus.WithMatchInterface("org.freedesktop.DBus.Properties"), dbus.WithMatchMember("PropertiesChanged")}
	}
	if old != "" {
		_ = conn.RemoveMatchSignalContext(ctx, match(old)...)
	}
	if now == "" {
		return nil
	}
	return conn.AddMatchSignalContext(ctx, match(now)...)
}

// changes reports whether the PropertiesChanged signal sig tells of a change
// of property prop of interface iface, with its value or without.
func changes(sig *dbus.Signal, iface, prop string) bool {
	if len(sig.Body) != 3 {
		return false
	}
	if name, _ := sig.Body[0].(string); name != iface {
		return false
	}
	if changed, ok := sig.Body[1].(map[string]dbus.Variant); ok {
		if _, ok := changed[prop]; ok {
			return true
		}
	}
	invalidated, _ := sig.Body[2].([]string)
	return slices.Contains(invalidated, prop)
}

// awaitLogind returns the unique name of org.freedesktop.login1's owner once
// it has one, or an error when the connection or ctx ends. follow has
// subscribed to the name's NameOwnerChanged.
func (l *Logind) awaitLogind(ctx context.Context, conn *dbus.Conn, signals <-chan *dbus.Signal) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var owner string
	err := conn.BusObject().CallWithContext(cctx, busName+".GetNameOwner", 0, logindName).Store(&owner)
	if err == nil {
		return owner, nil
	}
	var dbusErr dbus.Error
	if !errors.As(err, &dbusErr) || dbusErr.Name != "org.freedesktop.DBus.Error.NameHasNoOwner" {
		return "", fmt.Errorf("is logind on the bus: %w", err)
	}
	l.log.Info("logind is not on the system bus; waiting for it (session end is judged by other signs meanwhile)")
	for {
		sig, err := nextSignal(ctx, conn, signals)
		if err != nil {
			return "", err
		}
		if sig.Name != busName+".NameOwnerChanged" || sig.Sender != busName || len(sig.Body) != 3 {
			continue
		}
		name, _ := sig.Body[0].(string)
		if owner, _ := sig.Body[2].(string); name == logindName && owner != "" {
			return owner, nil
		}
	}
}

func (l *Logind) shutdownSeen() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shutdown
}

func (l *Logind) setState(state string, shutdown bool) {
	l.mu.Lock()
	changed := state != l.state || shutdown != l.shutdown
	l.state, l.shutdown = state, shutdown
	l.mu.Unlock()
	if changed {
		l.log.Info("login session", "state", state, "shutdown", shutdown)
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
}

// ownSession returns the path of the login session busmedic runs in (by
// XDG_SESSION_ID, or else by its pid), or "" if it runs in none.
func (l *Logind) ownSession(ctx context.Context, conn *dbus.Conn) (dbus.ObjectPath, error) {
	obj := conn.Object(logindName, logindPath)
	var path dbus.ObjectPath
	if l.session != "" {
		if err := obj.CallWithContext(ctx, logindManager+".GetSession", 0, l.session).Store(&path); err == nil {
			return path, nil
		}
	}
	err := obj.CallWithContext(ctx, logindManager+".GetSessionByPID", 0, uint32(os.Getpid())).Store(&path)
	if err == nil {
		return path, nil
	}
	var dbusErr dbus.Error
	if !errors.As(err, &dbusErr) || dbusErr.Name != "org.freedesktop.login1.NoSessionForPID" {
		return "", fmt.Errorf("find our login session (XDG_SESSION_ID=%q): %w", l.session, err)
	}
	return "", nil
}

// userPath returns the path of our user's logind object. A user whose
// manager runs busmedic has one, with or without a login.
func userPath(ctx context.Context, conn *dbus.Conn) (dbus.ObjectPath, error) {
	var user dbus.ObjectPath
	if err := conn.Object(logindName, logindPath).CallWithContext(ctx, logindManager+".GetUser", 0, uint32(os.Getuid())).Store(&user); err != nil {
		return "", fmt.Errorf("find our login user: %w", err)
	}
	return user, nil
}

// displaySession returns the path of the user's Display session, or "" if
// the user has none. logind elects it among the user's sessions that are
// not closing, a graphical one first, then a text one (tty), and keeps it
// while it closes unless another can take its place; it says when Display
// changes, not when the session's State does.
func displaySession(ctx context.Context, conn *dbus.Conn, user dbus.ObjectPath) (dbus.ObjectPath, error) {
	var display dbus.Variant
	if err := conn.Object(logindName, user).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0,
		logindUser, "Display").Store(&display); err != nil {
		return "", fmt.Errorf("find our user's display session: %w", err)
	}
	// Display is (so): the session id and its path, "/" for none (a
	// lingering user with no login): then only a shutdown is followed.
	if v, ok := display.Value().([]any); ok && len(v) == 2 {
		if p, ok := v[1].(dbus.ObjectPath); ok && p != "/" {
			return p, nil
		}
	}
	return "", nil
}

// userState returns the State of our user's logind object: "active",
// "online", "lingering", "closing"...
func userState(ctx context.Context, conn *dbus.Conn, user dbus.ObjectPath) (string, error) {
	var v dbus.Variant
	err := conn.Object(logindName, user).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, logindUser, "State").Store(&v)
	if err != nil {
		return "", fmt.Errorf("user %s State: %w", user, err)
	}
	s, _ := v.Value().(string)
	return strings.TrimSpace(s), nil
}

func sessionState(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath) (string, error) {
	var v dbus.Variant
	err := conn.Object(logindName, path).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, logindSession, "State").Store(&v)
	if err != nil {
		return "", fmt.Errorf("session %s State: %w", path, err)
	}
	s, _ := v.Value().(string)
	return strings.TrimSpace(s), nil
}

// nextSignal returns the next signal of conn, or an error once ctx is done
// or the connection is lost.
func nextSignal(ctx context.Context, conn *dbus.Conn, signals <-chan *dbus.Signal) (*dbus.Signal, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-conn.Context().Done():
		return nil, fmt.Errorf("system bus connection lost")
	case sig, ok := <-signals:
		if !ok {
			return nil, fmt.Errorf("system bus connection lost")
		}
		return sig, nil
	}
}
