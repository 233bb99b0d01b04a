package usermanager

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Apps a desktop launches get a transient scope of their own in app.slice
// (GNOME Shell's gnome_start_systemd_scope, KDE's KProcessRunner): the
// launcher starts the process, then hands its pid to the user manager. A
// scope, not a service, because the process already runs: busmedic needs
// its pid at once, its output in the app's log and its exit status.
// busmedic does the same for the apps it starts, so that they are not
// part of busmedic's own unit (its limits, its listing, its stop).

// Launcher is the <launcher> part of the names of the scopes busmedic
// makes, per systemd's desktop-environment conventions
// (docs/DESKTOP_ENVIRONMENTS.md): app-<launcher>-<ApplicationID>-<RANDOM>.scope.
const Launcher = "busmedic"

// AppSlice is the slice of the user manager for the user's applications.
const AppSlice = "app.slice"

// unitNameMax is the longest unit name systemd takes (UNIT_NAME_MAX,
// 256 with its NUL).
const unitNameMax = 255

// ScopeName names the scope of an app started by launcher:
// app-<launcher>-<ApplicationID>-<pid>.scope. The pid is the <RANDOM>
// part: no two running processes share it, and it tells which process the
// scope was made for. appID is escaped as systemd-escape does (so a '-'
// in it is \x2d, and the '-' between the parts stay the separators), and
// cut, at the end, to what fits a unit name.
func ScopeName(launcher, appID string, pid int) string {
	prefix := "app-" + EscapeUnitName(launcher) + "-"
	suffix := "-" + strconv.Itoa(pid) + ".scope"
	id := EscapeUnitName(appID)
	if room := unitNameMax - len(prefix) - len(suffix); len(id) > room {
		id = id[:room]
		// Never half an escape: a '\' cut from its "xNN" would make
		// another character of the name.
		if i := strings.LastIndexByte(id, '\\'); i >= 0 && i > len(id)-4 {
			id = id[:i]
		}
	}
	return prefix + id + suffix
}

// EscapeUnitName escapes s for a part of a unit name the way
// "systemd-escape STRING" does (unit_name_escape): ASCII letters, digits,
// ':', '_' and '.' (but not a leading '.') stay, '/' becomes '-', and
// every other byte, '-' among them, becomes \xNN.
func EscapeUnitName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0, !unitNameChar(c):
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unitNameChar reports whether c may stand as itself in an escaped name.
func unitNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == ':' || c == '_' || c == '.'
}

// StartScope asks the manager for the transient scope name holding the
// running process pid, in app.slice, and waits for the job until ctx
// ends. It returns the job's result ("done" when the process was moved).
//
// The scope is collected once its processes are gone, even if it failed
// (CollectMode=inactive-or-failed, as GNOME does), so that scopes of
// ended apps do not pile up in the manager. Job mode "fail": a scope is
// new by its name, there is nothing to replace.
func StartScope(ctx context.Context, conn *sdbus.Conn, name string, pid int, description string) (string, error) {
	props := []sdbus.Property{
		sdbus.PropPids(uint32(pid)),
		sdbus.PropSlice(AppSlice),
		sdbus.PropDescription(description),
		{Name: "CollectMode", Value: dbus.MakeVariant("inactive-or-failed")},
	}
	// Buffered: go-systemd sends the result while it holds its own lock,
	// and no one reads it once ctx has ended.
	ch := make(chan string, 1)
	if _, err := conn.StartTransientUnitContext(ctx, name, "fail", props, ch); err != nil {
		return "", fmt.Errorf("start scope %s for pid %d: %w", name, pid, err)
	}
	select {
	case res := <-ch:
		return res, nil
	case <-ctx.Done():
		return "", fmt.Errorf("scope %s for pid %d: %w", name, pid, context.Cause(ctx))
	}
}
