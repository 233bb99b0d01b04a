package busrestart

import (
	"fmt"
	"strings"

	"busmedic/relaunch/control"
)

// UpdateReport is the one line shown after the bus was restarted to finish
// an update of dbus: "D-Bus updated without reboot: 3 apps recovered, 1
// needs attention". Recovered are the apps that came back, whatever
// brought them (control.Outcome.Recovered: relaunched, reconnected by
// themselves, signalled, hooked, notified); needing attention are those
// that failed or hit their restart limit. Apps skipped on purpose (paused,
// ignored, disabled) or cancelled count in neither; jobs still running are
// mentioned as such.
func UpdateReport(r control.Recovery) string {
	recovered, attention, running := 0, 0, 0
	for _, j := range r.Jobs {
		switch {
		case j.Outcome.Recovered():
			recovered++
		case j.Outcome == control.Failed:
			attention++
		case j.Outcome == control.Skipped:
			if strings.Contains(j.Reason, "limit") {
				attention++
			}
		case !j.Outcome.Ended():
			running++
		}
	}
	s := fmt.Sprintf("D-Bus updated without reboot: %s recovered, %d %s attention",
		plural(recovered, "app", "apps"), attention, plural2(attention, "needs", "need"))
	if running > 0 {
		s += fmt.Sprintf(", %d still recovering", running)
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// plural2 is the verb agreeing with n.
func plural2(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
