// Package busrestart restarts the session bus on the user's request, in the
// one way that fits how the bus was started: through the systemd user
// manager when the bus daemon is a systemd user unit, by busmedic itself
// when it manages the bus daemon, and otherwise not at all, with the reason
// (a control.RestartRefusal: "started by dbus-launch, pid 1234").
//
// The systemd call goes over the manager's private socket
// ($XDG_RUNTIME_DIR/systemd/private), never over the bus being restarted,
// whose connection dies with the restart.
//
// It also restarts the system bus through systemd with the user's
// authorisation (SystemRestart), decides when to restart a bus whose daemon
// an update made outdated (Policy, after restart_after_update), and words
// the report of the recovery that follows (UpdateReport).
package busrestart

import (
	"context"
	"fmt"
	"os"

	"github.com/godbus/dbus/v5"
	"github.com/prometheus/procfs"

	"busmedic/relaunch/control"
	"busmedic/usermanager"
)

// Method is a way to restart one bus.
type Method interface {
	// Restart restarts the bus and returns once the restart was ordered.
	Restart(ctx context.Context) error
	// String says how, for menus and logs: "systemd user unit dbus.service".
	String() string
}

// Finder finds how to restart the session bus.
type Finder struct {
	// Address is the session bus address.
	Address string
	// SystemdSocket is the user manager's private socket; empty means
	// $XDG_RUNTIME_DIR/systemd/private.
	SystemdSocket string
	// Managed, if not nil, is the bus daemon busmedic runs itself; it is
	// used when the bus is not a systemd unit.
	Managed *Managed
}

// Find returns the Method for the session bus now, or a
// *control.RestartRefusal (control.ErrCannotRestart) that says why there
// is none.
func (f Finder) Find(ctx context.Context) (Method, error) {
	if f.Managed != nil && f.Managed.Running() {
		return f.Managed, nil
	}
	pid, err := daemonPID(ctx, f.Address)
	if err != nil {
		return nil, &control.RestartRefusal{Bus: "session", Reason: fmt.Sprintf("the session bus does not answer (%v)", err)}
	}
	socket := f.SystemdSocket
	if socket == "" {
		socket = usermanager.Socket(os.Getenv)
	}
	unit, sdErr := unitOf(ctx, socket, pid)
	if sdErr == nil && isBusUnit(unit) {
		return &systemdUnit{Socket: socket, Unit: unit}, nil
	}
	refusal := startedBy(pid, unit)
	refusal.Reason += "; to let busmedic restart it, run \"busmedic run --manage-session-bus\" in a session that does not start its own bus"
	return nil, refusal
}

// isBusUnit reports whether a systemd unit is a bus daemon's own unit, not
// a session scope or an app's service that happens to run the daemon.
func isBusUnit(unit string) bool {
	return unit == "dbus.service" || unit == "dbus-broker.service"
}

// startedBy tells who started the bus daemon pid, in facts and, in
// Reason, for people.
func startedBy(pid int, unit string) *control.RestartRefusal {
	r := &control.RestartRefusal{Bus: "session", PID: pid, Unit: unit}
	desc := fmt.Sprintf("the session bus (pid %d)", pid)
	r.Reason = desc + " was not started by systemd"
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return r
	}
	p, err := fs.Proc(pid)
	if err != nil {
		return r
	}
	st, err := p.Stat()
	if err != nil {
		return r
	}
	if st.PPID > 1 {
		if pp, err := fs.Proc(st.PPID); err == nil {
			if comm, err := pp.Comm(); err == nil {
				r.StartedBy, r.StartedByPID = comm, st.PPID
			}
		}
	}
	switch {
	case r.StartedBy != "":
		desc += fmt.Sprintf(" was started by %s, pid %d", r.StartedBy, r.StartedByPID)
	case st.PPID == 1 || st.PPID == 0:
		// dbus-launch forks the daemon and exits: it is adopted.
		r.StarterExited = true
		desc += " was started by dbus-launch or another program that has exited"
	}
	if unit != "" {
		desc += " in " + unit
	}
	r.Reason = desc
	return r
}

// daemonPID asks the bus for its daemon's pid over a short-lived private
// connection.
func daemonPID(ctx context.Context, address string) (int, error) {
	conn, err := dbus.Connect(address, dbus.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var pid uint32
	err = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixProcessID", 0, "org.freedesktop.DBus").Store(&pid)
	if err != nil {
		return 0, err
	}
	return int(pid), nil
}
