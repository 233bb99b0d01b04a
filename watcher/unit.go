package watcher

import (
	"strconv"
	"strings"
)

// Desktop apps often run in systemd units: app-*.service,
// app-*@autostart.service (made by systemd-xdg-autostart-generator from an
// autostart entry), or scopes such as app-gnome-foo-1234.scope and
// session-2.scope. A service can be started again through the manager
// that runs it; a scope cannot (it only groups processes someone else
// started). The unit of a process is read from its cgroup while the
// process lives: a process that exits with its bus takes that knowledge
// with it.

// cgroupUnit returns the systemd service a process runs in, from the text
// of its /proc/PID/cgroup: the last component of its cgroup path that is a
// .service. manager is the uid of the user manager (systemd --user) that
// runs the unit, or -1 for the system manager. It returns "" when the
// process is in no service: in a scope, in the user manager's own cgroup,
// or on a machine without systemd.
//
// On cgroup v2 the path is on the "0::" line; on a hybrid host (v1 with
// the unified hierarchy beside it) systemd's own hierarchy, the
// "name=systemd" line, is the one to read.
func cgroupUnit(text string) (unit string, manager int) {
	path, v2 := "", ""
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\n")
		_, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		controllers, p, ok := strings.Cut(rest, ":")
		switch {
		case !ok:
		case controllers == "name=systemd":
			path = p
		case controllers == "" && strings.HasPrefix(line, "0:"):
			v2 = p
		}
	}
	if path == "" {
		path = v2
	}
	manager = -1
	parts := strings.Split(path, "/")
	// A user manager runs as user@UID.service; the units it runs are
	// below it. Anything above it (user.slice, user-1000.slice) is the
	// system manager's.
	for i, c := range parts {
		if n, ok := strings.CutPrefix(c, "user@"); ok {
			if uid, err := strconv.Atoi(strings.TrimSuffix(n, ".service")); err == nil && strings.HasSuffix(n, ".service") {
				manager, parts = uid, parts[i+1:]
			}
		}
	}
	for _, c := range parts {
		// The last one: a service may put its processes in cgroups of
		// its own below (Delegate=), which are still the service's.
		if strings.HasSuffix(c, ".service") && len(c) > len(".service") {
			unit = c
		}
	}
	if unit == "" {
		manager = -1
	}
	return unit, manager
}
