package relaunch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/usermanager"
)

// An app busmedic starts itself (a relaunch with no unit of its own, a
// hook, a keep relaunch) would run in busmedic's cgroup: under systemd in
// busmedic.service, sharing its limits, listed as part of busmedic, and
// taken down with it by any KillMode but process. So, as desktops do for
// the apps they launch (GNOME Shell's gnome_start_systemd_scope, KDE's
// KProcessRunner), busmedic asks the user manager to move each process it
// starts into a transient scope of its own in app.slice:
// app-busmedic-<rule id>-<pid>.scope (usermanager.ScopeName). A "busmedic
// keep -- COMMAND" relaunch becomes COMMAND by exec, with the same pid, so
// the kept app ends up in that scope too.
//
// The move comes after the start: a scope takes a running process. An
// app that forks in its first moments, before the manager has moved it,
// leaves that child in busmedic's cgroup; GNOME accepts the same race.
// The keeper a "busmedic keep" may start moves itself into a scope of its
// own (package daemon, keeperScope), wherever it was started. busmedic.service
// keeps KillMode=process for those, and for apps whose scope could not be
// made.
//
// The scope is bookkeeping: without a manager, or when it refuses or is
// slow, the app stays where it is and the job goes on. The wait is
// bounded by scopeWait, so that a busy manager never holds a recovery
// up, and it holds none of the slots that bound how many apps start at
// once.

// scopeWait bounds how long a start waits for the user manager to make
// the app's scope: the dial if there is no connection yet, the call and
// the job, which take milliseconds on a manager that is not stuck.
const scopeWait = time.Second

// intoScope moves the process pid that busmedic just started for app into
// a scope of its own (see above). It is called before the process is
// reaped (startSpec.settle), so that pid cannot name another process.
func (e *Engine) intoScope(ctx context.Context, app, description string, pid int) {
	if e.cfg.UserManager == "" {
		return // no systemd user manager in this session
	}
	name := usermanager.ScopeName(usermanager.Launcher, scopeApp(app), pid)
	// The app runs whatever happens to the job: one cancelled now (its
	// bus went again) still leaves a process that belongs in its scope.
	sctx, cancel := context.WithTimeoutCause(context.WithoutCancel(ctx), scopeWait,
		fmt.Errorf("the user manager did not make it within %s", scopeWait))
	defer cancel()
	m, err := e.userManager(sctx)
	if err != nil {
		e.log.Debug("app stays in busmedic's cgroup: no user manager", "app", app, "pid", pid, "err", err)
		return
	}
	res, err := m.scope(sctx, name, pid, description)
	switch {
	case err != nil:
		var refused dbus.Error
		if !errors.As(err, &refused) && sctx.Err() == nil {
			// Not the manager's answer: the connection may have gone
			// stale (the manager was re-executed). The next user dials
			// anew.
			e.dropUserManager(m)
		}
		e.log.Warn("app stays in busmedic's cgroup: no scope of its own", "app", app, "pid", pid, "scope", name, "err", err)
	case res != "done":
		e.log.Warn("app stays in busmedic's cgroup: no scope of its own", "app", app, "pid", pid, "scope", name, "job", res)
	default:
		e.log.Debug("app in a scope of its own", "app", app, "pid", pid, "scope", name)
	}
}

// scopeApp is the app part of the name of app's scope: a rule's id, or
// for an app busmedic knows by its process ("casualty:dunst:1234", relaunched
// by hand; "kept:dunst:1234") the program's name, which is what a desktop's
// launcher names a scope after. Rule ids hold no colon.
func scopeApp(app string) string {
	_, rest, ok := strings.Cut(app, ":")
	if !ok {
		return app
	}
	if i := strings.LastIndexByte(rest, ':'); i > 0 {
		return rest[:i]
	}
	return rest
}

// settleInScope is a startSpec.settle that moves the started process of
// app into its scope.
func (e *Engine) settleInScope(ctx context.Context, app, description string) func(pid int) {
	return func(pid int) { e.intoScope(ctx, app, description, pid) }
}
