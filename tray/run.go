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
	"busmedic/icontheme"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// iconSize is the size of the one pixmap systray registers the item with;
// once registered, the tray gives the panel every size (see takeItem).
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
	self, _ := assets.Executable() // "": no icons found beside it
	t := &tray{socket: socketPath, daemon: control.NewClient(socketPath), log: log, editor: editor, poke: make(chan struct{}, 1),
		themed: findThemedIcons(icontheme.BaseDirs(), self), reportHost: make(chan struct{}, 1)}
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
	// The item's Status, IconName, every size of its icon and its
	// tooltip's description are the tray's to serve (see item.go).
	if it, err := takeItem(ctx, conn, t.themed, t.shown); err == nil {
		t.props = it
	} else if conn.Context().Err() != nil {
		return fmt.Errorf("%w (%v)", errBusLost, err)
	} else {
		t.log.Warn("the tray icon shows systray's Status and one icon size", "err", err)
	}
	hosts := make(chan hostState)
	wg.Go(func() { t.followHost(ctx, hosts) })
	wg.Go(func() { t.reportHosts(ctx) })
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
			t.setHost(h)
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
	themed themedIcons
	menu   *menu
	poke   chan struct{} // a click changed env: render again
	conn   *dbus.Conn    // the item's connection, once systray registered it
	// props serves the item's properties once taken over from systray;
	// nil before, or if that failed.
	props *itemProps

	mu     sync.Mutex
	status control.Status
	env    env
	// host is what followHost found last, hostKnown whether it found
	// anything yet; reportHost wakes reportHosts to tell the daemon.
	host       hostState
	hostKnown  bool
	reportHost chan struct{}

	// What the render loop showed last; its own.
	shown      look
	shownState state
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
		// possible now, and it knows nothing of the tray's host.
		t.env.RestartRefused = nil
		wake(t.reportHost)
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

// wake sends on a channel of capacity 1 without waiting: a value there
// already stands for this one.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (t *tray) refuseRestart(why *control.RestartRefusal) {
	t.mu.Lock()
	t.env.RestartRefused = why
	t.mu.Unlock()
	wake(t.poke)
}

// setHost keeps what followHost found, for reportHosts to tell.
func (t *tray) setHost(h hostState) {
	t.mu.Lock()
	t.host, t.hostKnown = h, true
	t.mu.Unlock()
	wake(t.reportHost)
}

// reportHosts tells the daemon what the tray found of its icon's host,
// at every change and again whenever the daemon connection is new, until
// ctx is done: the daemon shows it in its status, and says once when there
// is no StatusNotifierWatcher at all.
func (t *tray) reportHosts(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.reportHost:
		}
		t.mu.Lock()
		h, known := t.host, t.hostKnown
		t.mu.Unlock()
		if !known {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, hostCallTimeout)
		err := t.daemon.ReportTray(rctx, control.TrayHost{Watcher: h.watcher != "", Shown: h.registered})
		cancel()
		if err != nil && ctx.Err() == nil {
			// Told again once the daemon is back (take).
			t.log.Debug("the daemon was not told of the tray's host", "err", err)
		}
	}
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
	lk := look{Status: v.Status, Icon: v.State.Icon(), TipTitle: v.Tooltip, TipText: v.TooltipText}
	if t.shownOnce && v.State != t.shownState {
		t.log.Info("tray state", "state", v.State, "was", t.shownState, "status", v.Status)
	}
	if err := t.show(lk); err != nil {
		return err
	}
	t.shownState, t.shownOnce = v.State, true
	t.menu.apply(v)
	return nil
}

// show makes the item show lk: through the properties the tray serves
// once it took them over, through systray before (the look the panel
// gets at registration) or if that failed.
func (t *tray) show(lk look) error {
	if t.props != nil {
		if err := t.props.show(lk); err != nil {
			if t.conn.Context().Err() != nil {
				return fmt.Errorf("%w (%v)", errBusLost, err)
			}
			// Tried again at the next change.
			t.log.Warn("the tray icon was not updated", "err", err)
			return nil
		}
		t.shown = lk
		return nil
	}
	// The tooltip first: whoever sees the new icon reads the new
	// tooltip too.
	if !t.shownOnce || lk.TipTitle != t.shown.TipTitle {
		systray.SetTooltip(lk.TipTitle)
	}
	if !t.shownOnce || lk.Icon != t.shown.Icon {
		systray.SetIcon(assets.PNG(lk.Icon, iconSize))
	}
	t.shown = lk
	return nil
}

// listen sends the clicks on actionable items to the daemon. What
// destroys takes two clicks: "Restart session bus" and each app are
// submenus, and only the item in them, which says what it does, acts.
func (t *tray) listen(ctx context.Context, wg *sync.WaitGroup) {
	m := t.menu
	var cl clicks
	for i, e := range m.appRelaunch {
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
			t.do(ctx, "Always relaunch "+id, func(ctx context.Context, c *control.Client) error {
				rule, err := c.Learn(ctx, id)
				if err == nil {
					t.log.Info("made a rule", "casualty", id, "rule", rule)
				}
				return err
			})
		})
	}
	cl.on(m.restartNow.item, func(ctx context.Context) {
		t.do(ctx, "Restart of the session bus", func(ctx context.Context, c *control.Client) error {
			err := c.RestartBus(ctx, "session")
			var why *control.RestartRefusal
			switch {
			case errors.As(err, &why):
				t.refuseRestart(why)
			case err != nil && !errors.Is(err, control.ErrNotRunning):
				// The restart failed: not offered again, with why.
				t.refuseRestart(&control.RestartRefusal{Bus: "session", Reason: err.Error()})
			}
			return err
		})
	})
	cl.on(m.restartSystemNow.item, func(ctx context.Context) {
		t.do(ctx, "Restart of the system bus", func(ctx context.Context, c *control.Client) error {
			return c.RestartBus(ctx, "system")
		})
	})
	cl.on(m.editRules.item, func(ctx context.Context) { t.openEditor(ctx) })
	cl.on(m.history.item, func(ctx context.Context) { t.openEditor(ctx) })
	cl.on(m.pause.item, func(ctx context.Context) {
		if m.isPaused() {
			t.do(ctx, "Resume", func(ctx context.Context, c *control.Client) error { return c.Resume(ctx) })
			return
		}
		t.do(ctx, "Pause", func(ctx context.Context, c *control.Client) error { return c.Pause(ctx) })
	})
	wg.Go(func() { cl.run(ctx, wg) })
}

// actionTimeout bounds one click's request; a relaunch waits for the app
// (its rule's ready_timeout), as long as busmedic relaunch waits.
const actionTimeout = 2 * time.Minute

// do sends a click's request to the daemon. A failure is said where the
// user looks, in a notification ("Restart of the session bus failed", and
// why), which the daemon shows as its own, and logged: a request that ran
// out of time too.
func (t *tray) do(ctx context.Context, what string, fn func(context.Context, *control.Client) error) {
	t.doWithin(ctx, actionTimeout, what, fn)
}

func (t *tray) doWithin(ctx context.Context, timeout time.Duration, what string, fn func(context.Context, *control.Client) error) {
	cctx, cancel := context.WithTimeoutCause(ctx, timeout,
		fmt.Errorf("busmedic did not answer within %s; it may still be at it (busmedic status tells)", timeout))
	defer cancel()
	if err := fn(cctx, t.daemon); err != nil {
		if cctx.Err() != nil && ctx.Err() == nil {
			err = context.Cause(cctx)
		}
		t.failed(ctx, what, err)
	}
}

// failed says that the action what failed, with why.
func (t *tray) failed(ctx context.Context, what string, err error) {
	t.log.Warn("tray action failed", "action", what, "err", err)
	if errors.Is(err, control.ErrNotRunning) || ctx.Err() != nil {
		// No daemon to show it; the menu says it is not running.
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hostCallTimeout)
	defer cancel()
	if err := t.daemon.Notify(ctx, failureNotice(what, err)); err != nil {
		t.log.Warn("the failure was not shown", "err", err)
	}
}

// failureNotice is the notification of a click whose action failed.
func failureNotice(what string, err error) control.Notice {
	return control.Notice{Title: "busmedic: " + what + " failed", Body: err.Error()}
}

func (t *tray) relaunch(ctx context.Context, id string) {
	t.do(ctx, "Relaunch of "+id, func(ctx context.Context, c *control.Client) error {
		// The menu asked already: "Relaunch now" is a second click, in
		// a submenu that says a running app is stopped first.
		job, err := c.Relaunch(ctx, id, true)
		if err != nil {
			return err
		}
		t.log.Info("relaunched from the tray", "app", id, "outcome", job.Outcome, "pid", job.PID)
		if !job.Outcome.Recovered() {
			// The daemon did its part; the app did not come back.
			return errors.New(job.Text())
		}
		return nil
	})
}

func (t *tray) openEditor(ctx context.Context) {
	if t.editor == "" {
		return
	}
	// Not tied to the tray's context: the editor is the user's window
	// and outlives a tray restart.
	cmd := exec.Command(t.editor, "-control", t.socket)
	if err := cmd.Start(); err != nil {
		t.failed(ctx, "Opening the rules editor", err)
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
