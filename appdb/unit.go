package appdb

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"busmedic/watcher"
)

// busmedicUnits are the user units busmedic itself runs in when the
// session starts it: the unit "busmedic autostart enable --systemd" writes,
// and the one systemd-xdg-autostart-generator makes of its autostart entry.
// An app busmedic started runs in a scope of its own, or in busmedic's
// unit when the scope could not be made (busmedic.service keeps it alive
// there with KillMode=process); either way a rule must never name
// busmedic's unit: starting or restarting that unit is restarting
// busmedic.
var busmedicUnits = []string{"busmedic.service", "app-busmedic@autostart.service"}

// selfUnit is the user unit this process runs in, or "": the daemon's own,
// or the daemon's when it started this process (the tray, the editor).
var selfUnit = sync.OnceValue(func() string {
	p, err := watcher.ProcessInfo(os.Getpid())
	if err != nil {
		return ""
	}
	return p.Unit
})

// IsBusmedicUnit reports whether unit is one busmedic runs in: the unit
// "busmedic autostart enable --systemd" writes, the one
// systemd-xdg-autostart-generator makes of busmedic's autostart entry, or
// the one this process runs in. Such a unit is never an app's to start or
// restart, even if an app busmedic started runs in it (see busmedicUnits).
func IsBusmedicUnit(unit string) bool {
	return slices.Contains(busmedicUnits, unit) || (unit != "" && unit == selfUnit())
}

// checkUnitName checks a unit name the way systemd does, for a service
// that can be started: a name and an instance (after '@', if any) made of
// A-Z a-z 0-9 : - _ . \ (the instance may hold '@' too), ending in
// .service, 255 characters at most.
func checkUnitName(name string) error {
	base, ok := strings.CutSuffix(name, ".service")
	switch {
	case !ok:
		return errors.New("want a service, such as app-dunst@autostart.service (a scope cannot be started)")
	case len(name) > 255:
		return errors.New("longer than 255 characters")
	case base == "":
		return errors.New("no name before .service")
	}
	prefix, instance, templated := strings.Cut(base, "@")
	switch {
	case prefix == "":
		return errors.New("no name before '@'")
	case templated && instance == "":
		return errors.New("a template cannot be started: name an instance, such as app-dunst@autostart.service")
	}
	valid := func(c rune) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(":-_.\\", c)
	}
	for _, c := range prefix {
		if !valid(c) {
			return fmt.Errorf("character %q is not allowed (systemd-escape writes it as \\xNN)", c)
		}
	}
	for _, c := range instance {
		if !valid(c) && c != '@' {
			return fmt.Errorf("character %q is not allowed (systemd-escape writes it as \\xNN)", c)
		}
	}
	return nil
}

// unit reads a systemd user service: a valid service name, and not one of
// busmedic's own.
func (a *tableParser) unit(key string) (string, bool) {
	unit, ok := a.str(key)
	if !ok {
		return "", false
	}
	if err := checkUnitName(unit); err != nil {
		a.fail(key, "unit %q: %v", unit, err)
		return "", false
	}
	if slices.Contains(busmedicUnits, unit) {
		a.fail(key, "unit %q is busmedic's own: restarting it would restart busmedic; leave unit out", unit)
		return "", false
	}
	return unit, true
}
