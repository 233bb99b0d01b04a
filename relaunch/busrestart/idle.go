package busrestart

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	screenSaverName = "org.freedesktop.ScreenSaver"
	screenSaverPath = dbus.ObjectPath("/org/freedesktop/ScreenSaver")
	login1Name      = "org.freedesktop.login1"
	login1Path      = dbus.ObjectPath("/org/freedesktop/login1")
	propertiesIface = "org.freedesktop.DBus.Properties"
	idleCallTimeout = 5 * time.Second
)

// idleSource tells how long the session has been idle. Its signals wake the
// waiter when that may have changed (the screen saver starting or
// stopping, logind's IdleHint changing), so that waiting for idleness needs
// one timer and no polling.
type idleSource struct {
	name    string
	conn    *dbus.Conn
	signals chan *dbus.Signal
	read    func(ctx context.Context) (time.Duration, error)
}

func (s *idleSource) close() { s.conn.Close() }

// openIdle returns the first idle source that answers: the screen saver's
// GetSessionIdleTime on the session bus (KDE, and desktops that implement
// it), then logind's IdleHint of our session on the system bus (GNOME sets
// it).
func openIdle(ctx context.Context, sessionAddress, systemAddress string) (*idleSource, error) {
	var errs []error
	if sessionAddress != "" {
		s, err := screenSaverIdle(ctx, sessionAddress)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	if systemAddress != "" {
		s, err := logindIdle(ctx, systemAddress)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("no bus to ask for the idle time")
	}
	return nil, fmt.Errorf("no idle time from the screen saver or logind: %w", errors.Join(errs...))
}

func screenSaverIdle(ctx context.Context, address string) (*idleSource, error) {
	conn, err := dbus.Connect(address, dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("screen saver: %w", err)
	}
	s := &idleSource{name: "screen saver", conn: conn, signals: make(chan *dbus.Signal, 16)}
	conn.Signal(s.signals)
	cctx, cancel := context.WithTimeout(ctx, idleCallTimeout)
	defer cancel()
	// Subscribed before the first read, so no change falls in between.
	if err := conn.AddMatchSignalContext(cctx, dbus.WithMatchInterface(screenSaverName), dbus.WithMatchMember("ActiveChanged")); err != nil {
		conn.Close()
		return nil, fmt.Errorf("screen saver: subscribe: %w", err)
	}
	obj := conn.Object(screenSaverName, screenSaverPath)
	s.read = func(ctx context.Context) (time.Duration, error) {
		cctx, cancel := context.WithTimeout(ctx, idleCallTimeout)
		defer cancel()
		var ms uint32
		if err := obj.CallWithContext(cctx, screenSaverName+".GetSessionIdleTime", 0).Store(&ms); err != nil {
			return 0, fmt.Errorf("screen saver: GetSessionIdleTime: %w", err)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	if _, err := s.read(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

func logindIdle(ctx context.Context, address string) (*idleSource, error) {
	conn, err := dbus.Connect(address, dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("logind: %w", err)
	}
	s := &idleSource{name: "logind", conn: conn, signals: make(chan *dbus.Signal, 16)}
	conn.Signal(s.signals)
	cctx, cancel := context.WithTimeout(ctx, idleCallTimeout)
	defer cancel()
	session, err := ourSession(cctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.AddMatchSignalContext(cctx, dbus.WithMatchObjectPath(session), dbus.WithMatchInterface(propertiesIface),
		dbus.WithMatchMember("PropertiesChanged")); err != nil {
		conn.Close()
		return nil, fmt.Errorf("logind: subscribe: %w", err)
	}
	obj := conn.Object(login1Name, session)
	s.read = func(ctx context.Context) (time.Duration, error) {
		cctx, cancel := context.WithTimeout(ctx, idleCallTimeout)
		defer cancel()
		var hint, since dbus.Variant
		if err := obj.CallWithContext(cctx, propertiesIface+".Get", 0, login1Name+".Session", "IdleHint").Store(&hint); err != nil {
			return 0, fmt.Errorf("logind: IdleHint: %w", err)
		}
		if idle, _ := hint.Value().(bool); !idle {
			return 0, nil
		}
		if err := obj.CallWithContext(cctx, propertiesIface+".Get", 0, login1Name+".Session", "IdleSinceHint").Store(&since); err != nil {
			return 0, fmt.Errorf("logind: IdleSinceHint: %w", err)
		}
		us, _ := since.Value().(uint64)
		return time.Since(time.UnixMicro(int64(us))), nil
	}
	if _, err := s.read(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// ourSession finds our login session: the caller's ("auto"), or, for a
// daemon started by the user manager outside any session, the user's
// display session.
func ourSession(ctx context.Context, conn *dbus.Conn) (dbus.ObjectPath, error) {
	mgr := conn.Object(login1Name, login1Path)
	var path dbus.ObjectPath
	if err := mgr.CallWithContext(ctx, login1Name+".Manager.GetSession", 0, "auto").Store(&path); err == nil {
		return path, nil
	}
	var user dbus.ObjectPath
	if err := mgr.CallWithContext(ctx, login1Name+".Manager.GetUser", 0, uint32(os.Getuid())).Store(&user); err != nil {
		return "", fmt.Errorf("logind: our session: %w", err)
	}
	var display dbus.Variant
	if err := conn.Object(login1Name, user).CallWithContext(ctx, propertiesIface+".Get", 0, login1Name+".User", "Display").Store(&display); err != nil {
		return "", fmt.Errorf("logind: our display session: %w", err)
	}
	var d struct {
		ID   string
		Path dbus.ObjectPath
	}
	if err := dbus.Store([]any{display.Value()}, &d); err != nil || d.Path == "" || d.Path == "/" {
		return "", errors.New("logind: no display session")
	}
	return d.Path, nil
}

// waitIdle returns once the session has been idle for need, as the source
// tells. Between looks it waits on one timer for the idle time still
// missing, or on a signal that idleness changed, whichever comes first: a
// user at the screen pushes the restart back by a full need each time.
func waitIdle(ctx context.Context, src *idleSource, need time.Duration) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		idle, err := src.read(ctx)
		if err != nil {
			return err
		}
		if idle >= need {
			return nil
		}
		timer.Reset(need - idle)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		case <-src.conn.Context().Done():
			// Also when the connection closed before its signal
			// channel was registered: godbus never closes that one.
			return fmt.Errorf("%s: connection lost", src.name)
		case _, ok := <-src.signals:
			if !ok {
				return fmt.Errorf("%s: connection lost", src.name)
			}
			// Stop and drain, so Reset starts a fresh wait.
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
	}
}
