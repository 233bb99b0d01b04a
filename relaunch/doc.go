// Package relaunch brings apps back after a bus restart: from the watcher's
// events and the rules it plans one job per app that was on the bus when it
// went down, waits for the app to reconnect by itself, and otherwise acts by
// the app's rule (relaunch, signal, hook, notify), without ever starting an
// app twice or signalling a process that is not the one it saw. It keeps the
// history of what it did.
//
// # Engine
//
// An [Engine] consumes the [watcher.Event] stream of every bus ([Engine.Run])
// and keeps its own picture of each bus (peers, name owners), so it needs no
// bus connection to wait for names or pids. On Restarted it plans (from the
// Down snapshot and the rules in force; [Engine.Plan] is the same plan as a
// dry run) and runs one job per app, in parallel. A job:
//
//  1. waits until every name in the rule's after is on the new bus (at most
//     30s, or ready_timeout if longer);
//  2. waits grace for the app to come back by itself: its names, or for a
//     rule without names its pid, reappear: outcome reconnected;
//  3. acts: relaunch stops what is left of the app (SIGTERM, stop_timeout,
//     SIGKILL) and starts it; signal, hook and notify do what they say;
//  4. waits ready_timeout for the names (without names: for the process to
//     show up on the bus or stay alive for a second).
//
// Outcomes carry a reason for people ("exec not found: foo", "exited with
// 1", "org.example.A did not appear within 10s", "restart limit reached: 5
// in 60s").
//
// # Apps in systemd units
//
// An app that runs in a service of the user's systemd manager (the rule's
// unit, else the service its process ran in when the watcher saw it; never
// busmedic's own, [Config.OwnUnit]) is relaunched through that manager
// ([Config.UserManager], its private socket, which works while the session
// bus is down), never started by busmedic: a process busmedic starts is
// outside the unit, and systemd's Restart= could start a second copy. The engine reads the unit's state and lets a pure
// function decide: a unit systemd is bringing back by itself (waiting for
// its Restart=, starting, or running a process started after the bus went
// down) is waited for and reported reconnected; a failed or stopped one
// (systemd stops a Type=dbus unit whose name vanished) is started; an
// active one whose process predates the bus restart is restarted, and
// systemd, not busmedic, ends that process. Jobs run in mode "replace" and
// are waited for; a job systemd cancels (its own stop replaced it) is
// followed by a new look. Then the app's names are waited for as after any
// relaunch. Without a reachable manager the rule's exec, if any, is
// started instead, and the job says so. Exits of units busmedic started
// are systemd's to count (StartLimitBurst=), not max_restarts'.
//
// # Scopes
//
// A process the engine starts itself (a relaunch of an app in no unit, a
// keep relaunch, a hook) is moved, right after it started, into a
// transient scope of its own in the user manager's app.slice,
// app-busmedic-<rule id>-<pid>.scope, as desktops do for the apps they
// launch: not in busmedic's own unit, whose limits and stop it would
// share. Without a manager, or when the manager refuses or is slow
// (scopeWait), the process stays in busmedic's cgroup and the job goes
// on (scope.go).
//
// # Storms
//
// A bus that goes down again cancels the running jobs. The next Restarted
// plans once the cancelled jobs have returned, and plans again every app
// whose job was cancelled, together with the process that job may have
// started, so that this process is found (back on the bus, or stopped)
// rather than started a second time. Jobs of one app never overlap.
//
// # Processes
//
// Before any signal the engine opens a pidfd on the pid, then checks that
// the process still has the start time recorded when it was seen on the bus
// and belongs to this user; a reused pid is never signalled. Programs are
// started without a shell (unless the rule says shell = true: then
// "/bin/sh -c" runs the rule's exec joined by spaces), after checking that
// the program, the script an interpreter is given, and with shell = true
// each program and script the command line names, can be changed by no one
// but root or us (the files, the directories above them and any symlinks on
// the way; sticky directories such as /tmp are fine); in a new session,
// with stdin from /dev/null and stdout and stderr appended to
// StateDir/logs/APP.log, which is moved to APP.log.1 at a start when over
// 1 MiB (a file rather than a pipe, so that apps outlive busmedic). If the
// log cannot be written, the app starts with its output to /dev/null and
// the job says why; a history or log failure is warned about once per kind
// until it works again. Every started process is waited for, so none is
// left a zombie; apps keep running when the engine stops.
//
// # Deaf old copies of on-demand services
//
// A service the bus starts on demand (one with a service file, in the
// bus's ListActivatableNames) may stay alive but deaf through a bus
// restart; the new bus starts a new copy at the next call, and the old one
// would run for ever. Of the peers of a restart that no rule covers, the
// engine keeps those that are still alive, run as the user, are in no
// systemd unit (systemd stops and starts its units itself) and own names
// the bus can all start; once one of those names has an owner on the new
// bus, which may be several restarts later, it stops the old process
// (identity checked as below) and records a Recovery of its own in the
// history, with one job of action "stop" per copy. A process back on the
// bus is forgotten. The setting stop_deaf_services = false, or a rule that
// covers the process by then, leaves it running; a pause holds the stop
// until Resume.
//
// # Pause
//
// While paused ([Engine.Pause]) jobs end skipped ("paused") instead of
// acting. [Engine.Resume] then recovers, in a recovery of their own, the
// apps the pause skipped on each bus instance that is still up (the
// grace they had is not waited again), and stops the deaf copies it held.
//
// dbus-monitor turns itself into a monitor right after connecting and so
// leaves the bus's name table; the engine finds such clients in /proc (a
// process of ours matching a rule, with the bus address in its environment)
// when a nameless peer leaves, and treats them as on the bus.
//
// # History
//
// Each ended recovery (and each relaunch-now) is one JSON line of
// [Recovery] in StateDir/history.jsonl, moved to history.jsonl.1 when it
// would pass 1 MiB.
package relaunch
