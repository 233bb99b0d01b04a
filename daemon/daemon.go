// Package daemon is busmedic's daemon, "busmedic run": it wires the
// watchers of both buses, the rules store, the recovery engine, the update
// policy, the desktop notifications, the control socket and the tray's
// supervisor, and runs them until it is told to stop, the session ends or
// Quit is chosen in the tray (see [Run]).
//
// What it decides itself (which notification follows a recovery, how the
// first run offers a rule, how the session bus would be restarted, the id
// of a rule learnt from a casualty) small pure functions decide. The
// status it serves never waits on a bus: how the session bus can be
// restarted is found out when that bus comes up, not when the status is
// asked for.
package daemon

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

	"busmedic/appdb"
	"busmedic/assets"
	"busmedic/icontheme"
	"busmedic/relaunch"
	"busmedic/relaunch/busrestart"
	"busmedic/relaunch/control"
	"busmedic/tray"
	"busmedic/usermanager"
	"busmedic/watcher"
)

// Config is what "busmedic run" is told on its command line.
type Config struct {
	// RulesFile is the user rules file; "" means $BUSMEDIC_CONFIG or
	// $XDG_CONFIG_HOME/busmedic/apps.toml.
	RulesFile string
	// Socket is the control socket's path.
	Socket string
	// StateDir holds the history and the apps' logs.
	StateDir string
	// ManageSessionBus makes busmedic run the session bus daemon at the
	// session address, restart it on request and when it dies: for
	// sessions started with dbus-launch or without a bus.
	ManageSessionBus bool
	// Tray, if set, returns the command of the tray icon's child process
	// for the control socket at socket; it is started again after a
	// session bus restart (tray.Supervise), and its Quit ends Run. Nil: no
	// tray.
	Tray func(socket string) *exec.Cmd
	// Editor finds the rules editor's program, which the "Show" of a
	// recovery's notification opens on its History tab; nil: "Show" only
	// says that it cannot.
	Editor func() (string, error)
	// Log gets the daemon's log; nil means slog.Default().
	Log *slog.Logger
}

// ErrControlSocket is in Run's error when the control socket failed for
// good while busmedic ran: Run has logged it, and the socket and its lock
// are gone, so that a new busmedic can start. Any other error of Run means
// busmedic did not start.
var ErrControlSocket = errors.New("control socket failed")

// Run runs busmedic: the watchers of both buses, the rules, the recovery
// engine, the update policy, the notifications, the control socket and the
// tray, until ctx is done (busmedic is told to stop: it records why and
// recovers nothing more), the session ends, or Quit is chosen in the tray.
// It returns nil then, once everything it started has stopped; apps it
// started keep running.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	targets := []watcher.Target{watcher.SessionTarget(), watcher.SystemTarget()}
	var watchers []*watcher.Watcher
	for _, t := range targets {
		w, err := watcher.New(t, watcher.WithLogger(log))
		if err != nil {
			return fmt.Errorf("%s bus: %w", t.Name, err)
		}
		watchers = append(watchers, w)
	}
	logind, err := watcher.NewLogind(targets[1], log)
	if err != nil {
		return fmt.Errorf("system bus: %w", err)
	}
	// The socket comes after what may fail: only Serve gives it, and the
	// per-user lock with it, back.
	srv, err := control.Listen(cfg.Socket, log)
	if err != nil {
		return err
	}
	paths := appdb.DefaultPaths(cfg.RulesFile)
	store := appdb.NewStore(paths, log)
	if err := store.Err(); err != nil {
		// The daemon still watches the buses; the rules come in force as
		// soon as the file is fixed.
		log.Error("rules not loaded", "err", err)
	}

	intent := &relaunch.Intent{
		Logind:   logind,
		Display:  watcher.DisplayGone,
		Settings: func() appdb.Settings { return store.Current().Settings() },
		Log:      log,
	}
	// "" if it cannot be told: then no icon is found beside it, and a
	// keep rule's app is not started (relaunch.Config.Self).
	self, _ := assets.Executable()
	// A notification that the session bus takes with it when it goes away
	// is an error for its caller, never the daemon's end.
	// It names busmedic's desktop entry and icon, as installed.
	notifier := &relaunch.DesktopNotifier{Address: func() string { return busAddress(targets, "session") }, Log: log,
		DesktopEntry: desktopEntry, Icon: appIcon(icontheme.BaseDirs(), self)}
	finder := busrestart.Finder{Address: busAddress(targets, "session")}
	if cfg.ManageSessionBus {
		finder.Managed = &busrestart.Managed{Address: finder.Address, Log: log}
	}
	// The update policy restarts a bus whose daemon was updated on disk,
	// as restart_after_update says (ask, when-idle, never).
	policy := &busrestart.Policy{
		Settings:       func() appdb.Settings { return store.Current().Settings() },
		Notifier:       notifier,
		Ordered:        intent.Ordered,
		Finder:         finder,
		SessionAddress: func() string { return busAddress(targets, "session") },
		SystemAddress:  func() string { return busAddress(targets, "system") },
		Log:            log,
	}

	stopping := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	// A signal to stop (SIGTERM, SIGHUP: the session is tearing down) ends
	// recovery first: nothing may start after it.
	stopOnSignal := context.AfterFunc(stopping, func() {
		intent.Stopping("busmedic received a signal to stop")
		cancel()
	})
	defer stopOnSignal()
	var wg sync.WaitGroup
	// The daemon sits idle for days between bus restarts. Once start-up,
	// and later each recovery, is over, hand the memory it used back to
	// the system: the runtime alone would keep it as heap headroom.
	trim := time.AfterFunc(quietAfterStart, func() {
		debug.FreeOSMemory()
		log.Debug("memory handed back to the system")
	})
	defer trim.Stop()
	engine := relaunch.New(relaunch.Config{
		Intent:     intent.Ending,
		RulesError: store.Err,
		Rules:      store.Current,
		Addresses:  func(bus string) string { return busAddress(targets, bus) },
		StateDir:   cfg.StateDir,
		Logger:     log,
		Notifier:   notifier,
		// Apps in user services come back through the user manager;
		// the apps busmedic starts itself share its own unit.
		UserManager: usermanager.Socket(os.Getenv),
		OwnUnit:     ownUnit(log),
		// A rule with action keep starts its app through "busmedic
		// keep", this very program.
		Self: self,
		RecoveryEnded: func(r control.Recovery) {
			trim.Reset(quietAfterRecovery)
			// One notification per recovery; the notification server may
			// be one of the apps just recovered, which the notifier waits for.
			report, fromUpdate := policy.ReportFor(r)
			if n, ok := recoveryNotice(r, report, fromUpdate); ok {
				wg.Go(func() {
					nctx, ncancel := context.WithTimeout(ctx, 10*time.Minute)
					defer ncancel()
					chosen, err := notifier.Show(nctx, n)
					if err != nil {
						log.Info("recovery summary not shown", "summary", n.Body, "err", err)
					}
					if chosen == showAction {
						showHistory(cfg.Editor, srv.Path(), cfg.RulesFile, log)
					}
				})
			}
		},
	})
	wg.Go(func() { logind.Run(ctx) })
	wg.Go(func() {
		select {
		case <-intent.Ended():
			log.Info("the session is ending; busmedic exits")
			cancel()
		case <-ctx.Done():
		}
	})
	if finder.Managed != nil {
		wg.Go(func() {
			if err := finder.Managed.Run(ctx); err != nil {
				log.Error("managed session bus stopped", "err", err)
			}
		})
	}
	events := make(chan watcher.Event, 256)
	wg.Go(func() { watcher.RunAll(ctx, watchers, events) })
	toEngine, toPolicy, toProbe := make(chan watcher.Event, 256), make(chan watcher.Event, 64), make(chan watcher.Event, 64)
	wg.Go(func() { watcher.Tee(ctx, events, toEngine, toPolicy, toProbe) })
	wg.Go(func() { policy.Run(ctx, toPolicy) })
	restart := newRestartProbe(finder, log)
	wg.Go(func() { restart.Run(ctx, toProbe) })
	// The tray child tells what it found of the panel that shows its
	// icon; when no panel can, busmedic says so once.
	var trayHost *trayHost
	var trayChanged <-chan struct{}
	if cfg.Tray != nil {
		trayHost = newTrayHost(func(ctx context.Context, n relaunch.Notice) { showLogged(ctx, notifier, log, n) })
		trayChanged = trayHost.Changed()
		wg.Go(func() { trayHost.run(ctx) })
	}
	// A rules file edited changes the status too (its apps, its
	// settings), and may hide or show the tray icon.
	rulesChanged, traySetting := make(chan struct{}, 1), make(chan struct{}, 1)
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-store.Changes():
			}
			for _, c := range []chan struct{}{rulesChanged, traySetting} {
				select {
				case c <- struct{}{}:
				default:
				}
			}
		}
	})
	changed := make(chan struct{}, 1)
	wg.Go(func() { forwardChanges(ctx, changed, engine.Changed(), restart.Changed(), trayChanged, rulesChanged) })
	wg.Go(func() { _ = store.Run(ctx) })
	wg.Go(func() {
		// First run: a commented starter rules file, and offers of rules
		// for the apps on the session bus known not to survive a restart.
		err := firstRun(ctx, log, busAddress(targets, "session"), paths.User,
			func(n relaunch.Notice) (string, error) {
				return notifier.Show(ctx, n)
			})
		if err != nil && ctx.Err() == nil {
			log.Warn("first run", "err", err)
		}
	})
	wg.Go(func() {
		if err := engine.Run(ctx, toEngine); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("recovery engine stopped", "err", err)
		}
		cancel()
	})
	if cfg.Tray != nil {
		wg.Go(func() {
			never := func() bool { return store.Current().Settings().Tray == appdb.TrayNever }
			quit := showTray(ctx, never, traySetting, func(ctx context.Context) {
				log.Info("tray icon shown")
				tray.Supervise(ctx, func() *exec.Cmd {
					trayHost.childStarted() // it reports anew
					return cfg.Tray(srv.Path())
				}, log)
				// No child now: its last report no longer holds.
				trayHost.childStarted()
				if ctx.Err() != nil && never() {
					log.Info("tray icon hidden: tray = \"never\" in the settings")
				}
			})
			if quit {
				log.Info("Quit chosen in the tray; busmedic exits")
				cancel()
			}
		})
	}
	log.Info("busmedic running", "socket", srv.Path(), "session", targets[0].Address, "system", targets[1].Address)
	err = srv.Serve(ctx, backend{Engine: engine, store: store, finder: finder, intent: intent, watchers: watchers,
		systemAddress: busAddress(targets, "system"), userRules: paths.User, log: log,
		restart: restart, changed: changed, tray: trayHost,
		notify: clientNotices(ctx, &wg, func(n control.Notice) { showLogged(ctx, notifier, log, clientNotice(n)) }, log)})
	if err != nil {
		// The socket failed for good and is gone, and the lock with it:
		// a daemon nobody can reach must not linger, so that a new one
		// can start.
		log.Error("control socket failed; busmedic exits", "err", err)
	}
	cancel()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrControlSocket, err)
	}
	log.Info("busmedic stopped")
	return nil
}

// How long after start-up and after a recovery the daemon is taken to be
// quiet, so that trimming its memory does not race the work.
const (
	quietAfterStart    = 10 * time.Second
	quietAfterRecovery = 5 * time.Second
)

// busAddress is the address given to apps started for bus: the one busmedic
// watches, without the guid, which a restarted bus no longer has (libdbus
// refuses an address whose guid does not match).
func busAddress(targets []watcher.Target, bus string) string {
	for _, t := range targets {
		if t.Name == bus {
			return watcher.WithoutGUID(t.Address)
		}
	}
	return ""
}

// ownUnit is the systemd user service busmedic runs in, from its own
// cgroup: busmedic.service, app-busmedic@autostart.service, or whatever
// the user named it; "" outside one. The apps busmedic starts itself land
// there too, so the engine must never take it for theirs.
func ownUnit(log *slog.Logger) string {
	self, err := watcher.ProcessInfo(os.Getpid())
	if err != nil {
		log.Warn("own unit unknown", "err", err)
		return ""
	}
	if self.Unit != "" {
		log.Info("running in a systemd user unit", "unit", self.Unit)
	}
	return self.Unit
}

// maxClientNotices bounds the notifications clients asked for that are
// being shown at once: each may wait for a notification server (seconds)
// on a connection of its own, and a client must not make the daemon open
// connections without end.
const maxClientNotices = 4

// clientNotices returns the daemon's answer to a client's notification:
// shown by show, in the background (on wg, as the daemon's other work),
// unless maxClientNotices are being shown already; then it is dropped, and
// logged.
func clientNotices(ctx context.Context, wg *sync.WaitGroup, show func(control.Notice), log *slog.Logger) func(control.Notice) {
	slots := make(chan struct{}, maxClientNotices)
	return func(n control.Notice) {
		select {
		case slots <- struct{}{}:
		default:
			log.Warn("notification from a client dropped: too many being shown", "title", n.Title)
			return
		}
		wg.Go(func() {
			defer func() { <-slots }()
			if ctx.Err() == nil {
				show(n)
			}
		})
	}
}
