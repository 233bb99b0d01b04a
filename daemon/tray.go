package daemon

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"busmedic/relaunch"
	"busmedic/relaunch/control"
)

// noHostGrace is how long the tray must have found no StatusNotifierWatcher
// before busmedic says that its icon cannot show: at login the tray may
// start before the panel, and after a bus restart the panel comes back
// after the tray.
const noHostGrace = time.Minute

// trayHost keeps what the tray child last reported of its icon's host,
// for the status, and says once per run, in a notification, that the icon
// cannot show when there is no StatusNotifierWatcher (GNOME without the
// AppIndicator extension): instead of an icon nobody sees, a word. It says
// nothing once a watcher was seen in this run, since then a desktop that
// shows tray icons is there and a missing watcher is a panel restarting.
type trayHost struct {
	grace time.Duration
	// show shows the notice; it runs on run's goroutine.
	show func(ctx context.Context, n relaunch.Notice)

	mu      sync.Mutex
	host    *control.TrayHost // nil: no report from the running child yet
	poke    chan struct{}     // run's: a report came
	changed chan struct{}     // the status changed
}

func newTrayHost(show func(context.Context, relaunch.Notice)) *trayHost {
	return &trayHost{grace: noHostGrace, show: show, poke: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
}

// report takes the tray child's report.
func (h *trayHost) report(r control.TrayHost) {
	h.set(&r)
}

// childStarted forgets the last report: a new tray child reports anew.
func (h *trayHost) childStarted() { h.set(nil) }

func (h *trayHost) set(r *control.TrayHost) {
	h.mu.Lock()
	same := r == nil && h.host == nil || r != nil && h.host != nil && *r == *h.host
	h.host = r
	h.mu.Unlock()
	if same {
		return
	}
	for _, c := range []chan struct{}{h.poke, h.changed} {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// current returns the last report, or nil.
func (h *trayHost) current() *control.TrayHost {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.host == nil {
		return nil
	}
	r := *h.host
	return &r
}

// Changed gets a value whenever current changes.
func (h *trayHost) Changed() <-chan struct{} { return h.changed }

// run shows the notice once the tray has reported no watcher for grace
// without a watcher ever being seen, and returns once it did, once a
// watcher was seen (then it never will), or when ctx is done.
func (h *trayHost) run(ctx context.Context) {
	var timer *time.Timer
	var expired <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.poke:
		case <-expired:
			expired = nil
			if r := h.current(); r != nil && !r.Watcher {
				h.show(ctx, noHostNotice())
				return
			}
			// No report now (a new tray child starts): its report
			// starts the wait again.
			continue
		}
		switch r := h.current(); {
		case r == nil:
		case r.Watcher:
			return
		case expired == nil:
			timer = time.NewTimer(h.grace)
			expired = timer.C
		}
	}
}

// showTray runs the tray icon with supervise (tray.Supervise) while never
// reports false, the [settings] tray choice being other than "never": it
// stops the icon when the choice turns to never, and starts it again when
// it turns back, looking at never again at each value from changed. It
// returns true when supervise returned by itself (the user chose Quit in
// the tray), false once ctx is done.
func showTray(ctx context.Context, never func() bool, changed <-chan struct{}, supervise func(context.Context)) (quit bool) {
	for {
		for never() {
			select {
			case <-ctx.Done():
				return false
			case <-changed:
			}
		}
		shown, hide := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			supervise(shown)
		}()
		hidden := false
		for !hidden {
			select {
			case <-done:
				hide()
				return ctx.Err() == nil
			case <-changed:
				hidden = never()
			case <-ctx.Done():
				hidden = true
			}
		}
		hide()
		<-done
		if ctx.Err() != nil {
			return false
		}
	}
}

// noHostNotice is the notification that the tray icon cannot show.
func noHostNotice() relaunch.Notice {
	p := control.NoTrayHost
	return relaunch.Notice{Title: "busmedic: no tray icon",
		Body: strings.ToUpper(p[:1]) + p[1:] + ". busmedic keeps watching the buses; busmedic status tells what it does. " +
			"The icon appears by itself once a panel that shows tray icons is there; " +
			"to go without it for good, set tray = \"never\" under [settings] in the rules file (busmedic rules path)."}
}

// clientNotice is the notification a client asked for (control.OpNotify).
func clientNotice(n control.Notice) relaunch.Notice {
	return relaunch.Notice{Title: n.Title, Body: n.Body, Critical: n.Critical}
}

// noticeTimeout bounds the showing of a notification a client asked for:
// the notifier waits for a notification server, which may be an app being
// relaunched.
const noticeTimeout = time.Minute

// showLogged shows n through notifier, and logs it if it could not be
// shown.
func showLogged(ctx context.Context, notifier *relaunch.DesktopNotifier, log *slog.Logger, n relaunch.Notice) {
	ctx, cancel := context.WithTimeout(ctx, noticeTimeout)
	defer cancel()
	if _, err := notifier.Show(ctx, n); err != nil {
		log.Info("notification not shown", "title", n.Title, "body", n.Body, "err", err)
	}
}
