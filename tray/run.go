package tray

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime/debug"
	"sync"
	"time"

	"fyne.io/systray"
	"github.com/godbus/dbus/v5"

	"busmedic/assets"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// iconSize is the size of the one pixmap systray registers the item with;
// once registered, the tray gives the panel every size (see setPixmaps).
const iconSize = 32

// title is the StatusNotifierItem's title and id.
const title = "busmedic"

// firstStatusWait bounds how long the tray waits for the daemon's first
// status before it shows itself anyway (as "daemon not reachable"), so that
// it does not show a wrong icon for a moment.
const firstStatusWait = time.Second

// update is what the daemon connection reports to the render loop.
type update struct {
	status    control.Status
	connected bool
	err       error
}

// Run is the tray child's main: it waits for the session bus, shows the
// item, renders every status the daemon on socketPath sends (retrying
// while there is none), and sends menu clicks back to it. It returns nil
// when the user chooses Quit or ctx is done, and otherwise an error that
// tells whether the session bus connection died, the supervisor went away
// or the tray failed; ExitCode maps it to the exit status.
//
// Run can be called once per process: systray keeps its state in globals
// and cannot register twice.
func Run(ctx context.Context, socketPath string, log *slog.Logger) (err error) {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopParent, err := watchParent(ctx, cancel)
	if err != nil {
		return err
	}
	defer stopParent()
	// A done ctx is an order to stop, unless the supervisor vanished.
	defer func() {
		if cause := context.Cause(ctx); err == nil && errors.Is(cause, errParentGone) {
			err = cause
		}
	}()

	if up, err := awaitBus(ctx, log); !up {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil) // before wg.Wait: the goroutines end on it
	// No editor found: the menu says it is not installed.
	editor, _ := FindEditor()
	t := &tray{socket: socketPath, daemon: control.NewClient(socketPath), log: log, editor: editor, poke: make(chan struct{}, 1)}
	defer t.daemon.Close()
	updates := make(chan update)
	wg.Go(func() {
		t.daemon.Follow(ctx, func(st *control.Status, err error) {
			u := update{err: err}
			if st != nil {
				u = update{status: *st, connected: true}
			} else {
				log.Debug("daemon not reachable", "err", err)
			}
			select {
			case updates <- u:
			case <-ctx.Done():
			}
		})
	})
	// Show the daemon's status from the first frame when it answers soon.
	first := update{err: errors.New("no answer yet")}
	timer := time.NewTimer(firstStatusWait)
	select {
	case first = <-updates:
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
		return nil
	}
	timer.Stop()
	t.take(first)

	// Everything is set before systray registers, so that the panel's
	// first look is complete and no signal is sent on a missing connection.
	systray.SetTitle(title)
	t.menu = newMenu()
	if err := t.render(ctx); err != nil {
		return err
	}
	start, _ := systray.RunWithExternalLoop(nil, nil)
	start()
	// Quit stops systray's re-registration goroutine. systray's own end
	// function is not called: it closes the connection it may not have
	// (a nil pointer when the bus vanished during start); the process is
	// about to exit, which closes it anyway.
	defer systray.Quit()
	conn, err := systrayConn(ctx)
	if err != nil {
		return err
	}
	t.conn = conn
	if err := t.showIcon(ctx, t.shownState); err != nil {
		return err
	}
	hosts := make(chan hostState)
	wg.Go(func() { t.followHost(ctx, hosts) })
	t.listen(ctx, &wg)
	// The tray lives for the whole session and changes seldom: once
	// registering, or a burst of changes, is over, hand the memory it used
	// back to the system instead of keeping it as heap headroom.
	trim := time.AfterFunc(quietAfterChange, debug.FreeOSMemory)
	defer trim.Stop()

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-conn.Context().Done():
			return fmt.Errorf("%w (%v)", errBusLost, conn.Context().Err())
		case <-t.menu.quit.ClickedCh:
			log.Info("quit chosen in the tray menu")
			return nil
		case u := <-updates:
			t.take(u)
		case h := <-hosts:
			t.logHost(h)
			continue // nothing to render
		case <-t.poke:
		}
		if err := t.render(ctx); err != nil {
			return err
		}
		trim.Reset(quietAfterChange)
	}
}

// quietAfterChange is how long the tray waits after a change before it
// trims its memory, so that a recovery's burst of changes is trimmed once.
const quietAfterChange = 5 * time.Second

// tray is the running tray: the menu and what it showed last, and the few
// facts the daemon's status does not carry.
type tray struct {
	socket string
	daemon *control.Client
	log    *slog.Logger
	editor string
	menu   *menu
	poke   chan struct{} // a click changed env: render again
	conn   *dbus.Conn    // the item's connection, once systray registered it

	mu         sync.Mutex
	status     control.Status
	env        env
	shownState state
	shownTip   string
	shownOnce  bool

	// visible is what the tray last logged of the item's visibility; the
	// render loop's own.
	visible visibility
}

func (t *tray) take(u update) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u.connected && !t.env.Connected {
		// A new daemon connection: what it refused before may be
		// possible now.
		t.env.RestartRefused = nil
	}
	t.env.Connected = u.connected
	t.env.DaemonErr = ""
	if u.err != nil {
		t.env.DaemonErr = u.err.Error()
	}
	if u.connected {
		t.status = u.status
	}
}

func (t *tray) refuseRestart(why *control.RestartRefusal) {
	t.mu.Lock()
	t.env.RestartRefused = why
	t.mu.Unlock()
	select {
	case t.poke <- struct{}{}:
	default:
	}
}

// showIcon shows state's icon: in every size once the item is registered,
// else (or if that fails) in the one size systray sends.
func (t *tray) showIcon(ctx context.Context, state state) (err error) {
	if t.conn != nil {
		err := setPixmaps(ctx, t.conn, state.Icon())
		if err == nil {
			return nil
		}
		if t.conn.Context().Err() != nil {
			return fmt.Errorf("%w (%v)", errBusLost, err)
		}
		t.log.Warn("icon shown in one size only", "err", err)
	}
	// systray panics on a connection that died meanwhile.
	defer func() {
		if r := recover(); r != nil {
			err = panicErr(r, t.conn)
		}
	}()
	systray.SetIcon(assets.PNG(state.Icon(), iconSize))
	return nil
}

// render applies the current status to the icon, tooltip and menu. It
// runs on the render loop only, since systray's items are not safe for
// concurrent writes.
func (t *tray) render(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicErr(r, t.conn)
		}
	}()
	t.mu.Lock()
	e := t.env
	e.Editor = t.editor
	e.Now = time.Now()
	v := render(t.status, e)
	t.mu.Unlock()
	// The tooltip first: it is set at once, the icon over the bus, so
	// whoever sees the new icon reads the new tooltip too.
	if !t.shownOnce || v.Tooltip != t.shownTip {
		systray.SetTooltip(v.Tooltip)
	}
	if !t.shownOnce || v.State != t.shownState {
		if t.shownOnce {
			t.log.Info("tray state", "state", v.State, "was", t.shownState)
		}
		if err := t.showIcon(ctx, v.State); err != nil {
			return err
		}
	}
	t.shownState, t.shownTip, t.shownOnce = v.State, v.Tooltip, true
	t.menu.apply(v)
	return nil
}

// listen sends the clicks on actionable items to the daemon.
func (t *tray) listen(ctx context.Context, wg *sync.WaitGroup) {
	m := t.menu
	var cl clicks
	for i, e := range m.appItems {
		cl.on(e.item, func(ctx context.Context) {
			if id := m.appID(i); id != "" {
				t.relaunch(ctx, id)
			}
		})
	}
	for i, c := range m.casualties {
		cl.on(c.relaunch.item, func(ctx context.Context) {
			if id := m.casualtyID(i); id != "" {
				t.relaunch(ctx, id)
			}
		})
		cl.on(c.learn.item, func(ctx context.Context) {
			id := m.casualtyID(i)
			if id == "" {
				return
			}
			t.do(ctx, "learn", func(ctx context.Context, c *control.Client) error {
				rule, err := c.Learn(ctx, id)
				if err == nil {
					t.log.Info("made a rule", "casualty", id, "rule", rule)
				}
				return err
			})
		})
	}
	cl.on(m.restartBus.item, func(ctx context.Context) {
		t.do(ctx, "restart-bus", func(ctx context.Context, c *control.Client) error {
			err := c.RestartBus(ctx, "session")
			var why *control.RestartRefusal
			switch {
			case errors.As(err, &why):
				t.refuseRestart(why)
			case err != nil && !errors.Is(err, control.ErrNotRunning):
				// The restart failed: greyed out all the same, with why.
				t.refuseRestart(&control.RestartRefusal{Bus: "session", Reason: err.Error()})
			}
			return err
		})
	})
	cl.on(m.restartSystem.item, func(ctx context.Context) {
		t.do(ctx, "restart-bus system", func(ctx context.Context, c *control.Client) error {
			return c.RestartBus(ctx, "system")
		})
	})
	cl.on(m.editRules.item, func(context.Context) { t.openEditor() })
	cl.on(m.history.item, func(context.Context) { t.openEditor() })
	cl.on(m.pause.item, func(ctx context.Context) {
		t.do(ctx, "pause", func(ctx context.Context, c *control.Client) error {
			if m.isPaused() {
				return c.Resume(ctx)
			}
			return c.Pause(ctx)
		})
	})
	wg.Go(func() { cl.run(ctx, wg) })
}

// actionTimeout bounds one click's request; a relaunch waits for the app.
const actionTimeout = 30 * time.Second

// do sends a click's request to the daemon, and logs a failure.
func (t *tray) do(ctx context.Context, op string, fn func(context.Context, *control.Client) error) {
	ctx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	if err := fn(ctx, t.daemon); err != nil {
		t.log.Warn("tray action failed", "op", op, "err", err)
	}
}

func (t *tray) relaunch(ctx context.Context, id string) {
	t.do(ctx, "relaunch", func(ctx context.Context, c *control.Client) error {
		job, err := c.Relaunch(ctx, id)
		if err == nil {
			t.log.Info("relaunched from the tray", "app", id, "outcome", job.Outcome, "pid", job.PID)
		}
		return err
	})
}

func (t *tray) openEditor() {
	if t.editor == "" {
		return
	}
	// Not tied to the tray's context: the editor is the user's window
	// and outlives a tray restart.
	cmd := exec.Command(t.editor, "-control", t.socket)
	if err := cmd.Start(); err != nil {
		t.log.Warn("rules editor did not start", "path", t.editor, "err", err)
		return
	}
	t.log.Info("rules editor started", "pid", cmd.Process.Pid)
	// Reap it; this goroutine ends when the editor does, or with the
	// tray process.
	go cmd.Wait()
}

// awaitBus returns true once the session bus is up, false if ctx ends
// first or the bus address is unusable (then with the error). It watches
// the bus's socket rather than polling, so a tray started while the bus is
// down costs nothing until it is back.
func awaitBus(ctx context.Context, log *slog.Logger) (bool, error) {
	// The watcher is stopped once the bus is up, which it would log as
	// the bus going down: its events are logged here instead.
	w, err := watcher.New(watcher.SessionTarget(), watcher.UpDownOnly(), watcher.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return false, fmt.Errorf("session bus: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan watcher.Event)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, events)
	}()
	defer func() { cancel(); <-done }()
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case e := <-events:
			if e.Kind == watcher.Up {
				return true, nil
			}
			log.Info("waiting for the session bus", "event", e.Kind, "reason", e.Reason)
		}
	}
}

// itemName is the well-known name systray owns for the item: one item per
// process.
func itemName() string { return fmt.Sprintf("org.kde.StatusNotifierItem-%d-1", os.Getpid()) }

// systrayConn returns the connection systray registered on: godbus's shared
// session connection. If the bus died while systray started, SessionBus
// hands out a new connection instead; the item's name, owned by systray's
// connection, tells them apart.
func systrayConn(ctx context.Context) (*dbus.Conn, error) {
	conn, err := dbus.SessionBus()
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", errBusLost, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	name := itemName()
	var owner string
	err = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, name).Store(&owner)
	if err != nil || owner != conn.Names()[0] {
		return nil, fmt.Errorf("%w (systray's name %s: owner %q, %v)", errBusLost, name, owner, err)
	}
	return conn, nil
}
