package bustest

import (
	"os"
	"path"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

// Logind is a stand-in org.freedesktop.login1 on a test bus (run the bus
// with SystemType): one login session, whose State, its user's State and
// the machine's PrepareForShutdown the test drives. Stop it and start another to play
// logind restarting while the bus stays up.
type Logind struct {
	b         *Bus
	conn      *dbus.Conn
	props     *prop.Properties
	userProps *prop.Properties
	// SessionPath is the session's object path.
	SessionPath dbus.ObjectPath
	// UserPath is the object path of the user, the uid of the test.
	UserPath dbus.ObjectPath
}

// sessions numbers the stand-ins' sessions: each has its own path, so a
// follower that keeps the path an earlier logind gave is caught out.
var sessions atomic.Int64

type logindManager struct {
	path, user dbus.ObjectPath
	// inUnit: the caller is in no session, as in a systemd user unit.
	inUnit bool
}

func (m logindManager) GetSession(id string) (dbus.ObjectPath, *dbus.Error) {
	if m.inUnit {
		return "", &dbus.Error{Name: "org.freedesktop.login1.NoSuchSession", Body: []any{"No session '" + id + "' known"}}
	}
	return m.path, nil
}

func (m logindManager) GetSessionByPID(pid uint32) (dbus.ObjectPath, *dbus.Error) {
	if m.inUnit {
		return "", &dbus.Error{Name: "org.freedesktop.login1.NoSessionForPID", Body: []any{"PID " + strconv.FormatUint(uint64(pid), 10) + " does not belong to any known session"}}
	}
	return m.path, nil
}

func (m logindManager) GetUser(uid uint32) (dbus.ObjectPath, *dbus.Error) { return m.user, nil }

// StartLogind serves org.freedesktop.login1 on the bus with one session in
// state "active"; every session id and pid maps to it. The session's path
// differs from that of every other stand-in. It stops with the bus, the test
// or Stop.
func (b *Bus) StartLogind() *Logind {
	b.t.Helper()
	return b.startLogind(false)
}

// StartLogindInUnit serves org.freedesktop.login1 as StartLogind does, for
// a caller in no login session, as in a systemd user unit: logind knows no
// session by its pid or XDG_SESSION_ID, and the session is the user's
// Display only once SetDisplay says so.
func (b *Bus) StartLogindInUnit() *Logind {
	b.t.Helper()
	return b.startLogind(true)
}

func (b *Bus) startLogind(inUnit bool) *Logind {
	b.t.Helper()
	conn, err := dbus.Connect(b.Address())
	if err != nil {
		b.t.Fatalf("bustest: logind: %v", err)
	}
	b.t.Cleanup(func() { conn.Close() })
	l := &Logind{b: b, conn: conn, SessionPath: dbus.ObjectPath("/org/freedesktop/login1/session/_3" + strconv.FormatInt(sessions.Add(1), 10)),
		UserPath: dbus.ObjectPath("/org/freedesktop/login1/user/_" + strconv.Itoa(os.Getuid()))}
	manager := logindManager{path: l.SessionPath, user: l.UserPath, inUnit: inUnit}
	if err := conn.Export(manager, "/org/freedesktop/login1", "org.freedesktop.login1.Manager"); err != nil {
		b.t.Fatalf("bustest: logind: %v", err)
	}
	display := l.display(!inUnit)
	// logind says when Display changes; the value in its signal may be
	// the old one, so the stand-in sends none: a follower must ask.
	l.userProps, err = prop.Export(conn, l.UserPath, prop.Map{
		"org.freedesktop.login1.User": {
			"Display": {Value: display, Emit: prop.EmitInvalidates},
			// The real logind tells no change of a user's State: a
			// follower must ask.
			"State": {Value: "active", Emit: prop.EmitFalse},
		},
	})
	if err != nil {
		b.t.Fatalf("bustest: logind: %v", err)
	}
	l.props, err = prop.Export(conn, l.SessionPath, prop.Map{
		"org.freedesktop.login1.Session": {
			"State":         {Value: "active", Emit: prop.EmitTrue},
			"IdleHint":      {Value: false, Emit: prop.EmitTrue},
			"IdleSinceHint": {Value: uint64(0), Emit: prop.EmitTrue},
		},
	})
	if err != nil {
		b.t.Fatalf("bustest: logind: %v", err)
	}
	reply, err := conn.RequestName("org.freedesktop.login1", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		b.t.Fatalf("bustest: logind: own org.freedesktop.login1: %v %v", reply, err)
	}
	return l
}

// SetState sets the session's State ("active", "online", "closing") and
// emits PropertiesChanged, as logind does.
func (l *Logind) SetState(state string) {
	l.props.SetMust("org.freedesktop.login1.Session", "State", state)
}

// SetUserState sets the user's State ("active", "online", "lingering",
// "closing"), silently, as logind does: "closing" once every session of
// the user is closing or gone and the user does not linger.
func (l *Logind) SetUserState(state string) {
	l.userProps.SetMust("org.freedesktop.login1.User", "State", state)
}

// SetDisplay makes the session the user's Display (on), as logind does when
// the user logs in, or leaves the user with none, as when the display
// session has ended, and says that Display changed.
func (l *Logind) SetDisplay(on bool) {
	l.userProps.SetMust("org.freedesktop.login1.User", "Display", l.display(on))
}

// sessionRef is a session as the User's Display gives it: (so).
type sessionRef struct {
	ID   string
	Path dbus.ObjectPath
}

// display is the value of the User's Display: the session's id and path,
// or none.
func (l *Logind) display(on bool) sessionRef {
	if !on {
		return sessionRef{"", "/"}
	}
	return sessionRef{path.Base(string(l.SessionPath)), l.SessionPath}
}

// SetIdle sets the session's IdleHint and IdleSinceHint (µs since the
// epoch) and emits PropertiesChanged, as logind does when the desktop
// reports the user idle (since not zero) or back (since zero).
func (l *Logind) SetIdle(since time.Time) {
	idle, us := !since.IsZero(), uint64(0)
	if idle {
		us = uint64(since.UnixMicro())
	}
	l.props.SetMust("org.freedesktop.login1.Session", "IdleSinceHint", us)
	l.props.SetMust("org.freedesktop.login1.Session", "IdleHint", idle)
}

// PrepareForShutdown emits the Manager's PrepareForShutdown signal.
func (l *Logind) PrepareForShutdown(start bool) {
	l.b.t.Helper()
	if err := l.conn.Emit("/org/freedesktop/login1", "org.freedesktop.login1.Manager.PrepareForShutdown", start); err != nil {
		l.b.t.Fatalf("bustest: logind: %v", err)
	}
}

// Stop ends the stand-in as logind exiting does: org.freedesktop.login1 has
// no owner once Stop returns, and StartLogind may serve it again.
func (l *Logind) Stop() {
	// Released before the connection closes: the bus handles a closed
	// connection in its own time, and a new stand-in must find the name
	// free. It fails only when the bus is gone, and the name with it.
	l.conn.ReleaseName("org.freedesktop.login1")
	l.conn.Close()
}
