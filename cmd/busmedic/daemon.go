package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/adrg/xdg"

	"busmedic/appdb"
	"busmedic/relaunch"
	"busmedic/relaunch/busrestart"
	"busmedic/relaunch/control"
	"busmedic/tray"
	"busmedic/watcher"
)

// runDaemon is "busmedic run": the watchers of both buses, the rules, the
// recovery engine and the control socket, until SIGTERM or SIGINT. Apps it
// started keep running when it exits.
func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "user rules file (default $BUSMEDIC_CONFIG or $XDG_CONFIG_HOME/busmedic/apps.toml)")
	socket := fs.String("socket", control.DefaultPath(), "control socket")
	stateDir := fs.String("state-dir", filepath.Join(xdg.StateHome, "busmedic"), "history and app logs")
	noTray := fs.Bool("no-tray", false, "do not show the tray icon")
	manage := fs.Bool("manage-session-bus", false, "run the session bus daemon (dbus-daemon --session) at the session address, restart it on request and when it dies; for sessions started with dbus-launch or none")
	verbose := fs.Bool("v", false, "log debug detail")
	if code, ok := parseFlags(fs, args, stdout, "busmedic run [--config FILE] [--no-tray]",
		"Runs busmedic: watches the session and system bus and recovers apps after a restart."); !ok {
		return code
	}
	log := newLogger(stderr, slog.LevelInfo, *verbose)

	srv, err := control.Listen(*socket, log)
	if err != nil {
		fmt.Fprintf(stderr, "busmedic run: %v\n", err)
		return exitError
	}
	store := appdb.NewStore(appdb.DefaultPaths(*config), log)
	if err := store.Err(); err != nil {
		// The daemon still watches the buses; the rules come in force as
		// soon as the file is fixed.
		log.Error("rules not loaded", "err", err)
	}

	targets := []watcher.Target{watcher.SessionTarget(), watcher.SystemTarget()}
	var watchers []*watcher.Watcher
	for _, t := range targets {
		w, err := watcher.New(t, watcher.WithLogger(log))
		if err != nil {
			fmt.Fprintf(stderr, "busmedic run: %s bus: %v\n", t.Name, err)
			return exitError
		}
		watchers = append(watchers, w)
	}
	logind, err := watcher.NewLogind(targets[1], log)
	if err != nil {
		fmt.Fprintf(stderr, "busmedic run: system bus: %v\n", err)
		return exitError
	}
	intent := &relaunch.Intent{
		Logind:   logind,
		Display:  watcher.DisplayGone,
		Settings: func() appdb.Settings { return store.Current().Settings() },
		Log:      log,
	}
	// A notification that the session bus takes with it when it goes away
	// is an error for its caller, never the daemon's end.
	notifier := &relaunch.DesktopNotifier{Address: func() string { return busAddress(targets, "session") }, Log: log}
	finder := busrestart.Finder{Address: busAddress(targets, "session")}
	if *manage {
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
	context.AfterFunc(stopping, func() {
		intent.Stopping("busmedic received a signal to stop")
		cancel()
	})
	var wg sync.WaitGroup
	// The daemon sits idle for days between bus restarts. Once start-up,
	// and later each recovery, is over, hand the memory it used back to
	// the system: the runtime alone would keep it as heap headroom.
	trim := time.AfterFunc(quietAfterStart, debug.FreeOSMemory)
	defer trim.Stop()
	engine := relaunch.New(relaunch.Config{
		Intent:     intent.Ending,
		RulesError: store.Err,
		Rules:      store.Current,
		Addresses:  func(bus string) string { return busAddress(targets, bus) },
		StateDir:   *stateDir,
		Logger:     log,
		Notifier:   notifier,
		RecoveryEnded: func(r control.Recovery) {
			trim.Reset(quietAfterRecovery)
			// One notification per recovery; the notification server may
			// be one of the apps just recovered, which the notifier waits for.
			msg, ok := policy.ReportFor(r)
			if !ok {
				msg, ok = relaunch.Summary(r)
			}
			if ok {
				wg.Go(func() {
					nctx, ncancel := context.WithTimeout(ctx, 10*time.Minute)
					defer ncancel()
					chosen, err := notifier.Notify(nctx, "busmedic", msg, []string{"show", "Show"})
					if err != nil {
						log.Info("recovery summary not shown", "summary", msg, "err", err)
					}
					if chosen == "show" {
						showHistory(srv.Path(), log)
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
	var watching sync.WaitGroup
	for _, w := range watchers {
		watching.Go(func() { w.Run(ctx, events) })
	}
	wg.Go(func() {
		watching.Wait()
		close(events)
	})
	toEngine, toPolicy := make(chan watcher.Event, 256), make(chan watcher.Event, 64)
	wg.Go(func() { watcher.Tee(ctx, events, toEngine, toPolicy) })
	wg.Go(func() { policy.Run(ctx, toPolicy) })
	wg.Go(func() { _ = store.Run(ctx) })
	wg.Go(func() {
		// First run: a commented starter rules file, and offers of rules
		// for the apps on the session bus known not to survive a restart.
		err := firstRun(ctx, log, busAddress(targets, "session"), appdb.DefaultPaths(*config).User,
			func(title, body string, actions []string) (string, error) {
				return notifier.Notify(ctx, title, body, actions)
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
	if !*noTray {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "busmedic run: %v\n", err)
			return exitError
		}
		wg.Go(func() {
			tray.Supervise(ctx, func() *exec.Cmd {
				cmd := exec.Command(self, "tray", "--socket", srv.Path())
				cmd.Stderr = stderr
				return cmd
			}, log)
			if ctx.Err() == nil {
				log.Info("Quit chosen in the tray; busmedic exits")
				cancel()
			}
		})
	}
	log.Info("busmedic running", "socket", srv.Path(), "session", targets[0].Address, "system", targets[1].Address)
	err = srv.Serve(ctx, daemonBackend{Engine: engine, store: store, finder: finder, intent: intent, watchers: watchers,
		systemAddress: busAddress(targets, "system"), userRules: appdb.DefaultPaths(*config).User, log: log,
		restart: &restartCache{}})
	if err != nil {
		// The socket failed for good and is gone, and the lock with it:
		// a daemon nobody can reach must not linger, so that a new one
		// can start.
		log.Error("control socket failed; busmedic exits", "err", err)
	}
	cancel()
	wg.Wait()
	if err != nil {
		return exitError
	}
	log.Info("busmedic stopped")
	return exitOK
}

// How long after start-up and after a recovery the daemon is taken to be
// quiet, so that trimming its memory does not race the work.
const (
	quietAfterStart    = 10 * time.Second
	quietAfterRecovery = 5 * time.Second
)

// daemonBackend is the engine as the control socket serves it, with the
// rules reload added.
type daemonBackend struct {
	*relaunch.Engine
	store     *appdb.Store
	finder    busrestart.Finder
	intent    *relaunch.Intent
	watchers  []*watcher.Watcher
	userRules string
	// systemAddress is the system bus, restarted through systemd.
	systemAddress string
	restart       *restartCache
	log           *slog.Logger
}

// restartCache remembers, per session bus instance, how it can be
// restarted: finding out takes a few calls, and the status is asked for at
// every change.
type restartCache struct {
	mu      sync.Mutex
	busID   string
	how     string
	refused *control.RestartRefusal
}

// Status is the engine's status, with how the session bus can be restarted
// (so the tray can grey out "Restart session bus" and say why before any
// click).
func (b daemonBackend) Status() control.Status {
	st := b.Engine.Status()
	id := ""
	for _, bs := range st.Buses {
		if bs.Name == "session" && bs.Up {
			id = bs.ID
		}
	}
	if id == "" {
		return st
	}
	c := b.restart
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busID != id {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m, err := b.finder.Find(ctx)
		cancel()
		c.busID, c.how, c.refused = id, "", nil
		switch {
		case err == nil:
			c.how = m.String()
		case errors.As(err, &c.refused):
			// The status says why, until the next session bus.
		default:
			c.busID = "" // try again at the next status
		}
	}
	st.SessionRestart, st.SessionRestartRefusal = c.how, c.refused
	if c.refused != nil {
		st.SessionRestartRefused = c.refused.Reason
	}
	return st
}

func (b daemonBackend) Reload() error { return b.store.Reload().Err }

// RestartBus restarts the session bus the way it was started, or the
// system bus through systemd with the user's authorisation.
func (b daemonBackend) RestartBus(ctx context.Context, bus string) error {
	switch bus {
	case "system":
		// polkit asks the user; the request's context waits for the answer.
		b.log.Info("restarting the system bus on request", "how", "systemd, with the user's authorisation")
		return withdrawOnError(b.intent.Ordered(bus), busrestart.SystemRestart(ctx, b.systemAddress))
	case "session":
	default:
		return fmt.Errorf("no bus %q (want session or system)", bus)
	}
	m, err := b.finder.Find(ctx)
	if err != nil {
		return err
	}
	b.log.Info("restarting the session bus on request", "how", m.String())
	return withdrawOnError(b.intent.Ordered(bus), m.Restart(ctx))
}

// withdrawOnError takes back the order of a restart that failed.
func withdrawOnError(withdraw func(), err error) error {
	if err != nil {
		withdraw()
	}
	return err
}

// Peers returns who is on each bus now.
func (b daemonBackend) Peers() map[string][]watcher.Peer {
	peers := map[string][]watcher.Peer{}
	for _, w := range b.watchers {
		peers[w.Target().Name] = w.Peers()
	}
	return peers
}

// DryRun plans a recovery for bus as if it restarted now, with who is on
// it now.
func (b daemonBackend) DryRun(bus string) ([]control.PlannedJob, error) {
	for _, w := range b.watchers {
		if w.Target().Name == bus {
			return b.Plan(bus, w.Peers()), nil
		}
	}
	return nil, fmt.Errorf("no bus %q (want session or system)", bus)
}

// Learn adds a rule for a casualty to the user's rules file ("Always
// relaunch"), through appdb's atomic save, and reloads the rules.
func (b daemonBackend) Learn(casualty string) (string, error) {
	var peer *watcher.Peer
	for _, c := range b.Status().Casualties {
		if c.ID == casualty {
			peer = &c.Peer
		}
	}
	if peer == nil {
		return "", fmt.Errorf("learn %s: %w (see busmedic status)", casualty, control.ErrUnknownApp)
	}
	f, err := appdb.OpenFile(b.userRules)
	if err != nil {
		return "", err
	}
	rule := appdb.FromPeer(*peer)
	base := rule.ID
	for n := 2; ; n++ {
		if _, taken := f.Lookup(rule.ID); !taken {
			break
		}
		rule.ID = fmt.Sprintf("%s-%d", base, n)
	}
	if err := f.AddOrReplace(rule); err != nil {
		return "", err
	}
	if err := f.Save(); err != nil {
		return "", err
	}
	b.log.Info("rule added for a casualty", "rule", rule.ID, "file", b.userRules)
	return rule.ID, b.Reload()
}

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

// showHistory opens the rules editor, whose History tab tells what each
// recovery did; it runs on its own, past busmedic's exit.
func showHistory(socket string, log *slog.Logger) {
	editor, err := findEditor()
	if err != nil {
		log.Info("cannot show the history: rules editor not installed; busmedic history tells it", "err", err)
		return
	}
	cmd := exec.Command(editor, "-control", socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		log.Warn("rules editor did not start", "err", err)
		return
	}
	go cmd.Wait() // reap it; it ends when the user closes it
}
