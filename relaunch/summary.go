package relaunch

import (
	"fmt"
	"strings"

	"busmedic/relaunch/control"
)

// Summary sums a recovery up in one line for a notification, such as
// "Session bus restarted: 3 apps relaunched, 1 needs attention" ("Recovery
// resumed on the session bus: ..." for the apps a pause held back). ok is
// false when there is nothing worth telling: no app was concerned, or the
// session is ending.
func Summary(r control.Recovery) (line string, ok bool) {
	if len(r.Jobs) == 0 || strings.HasPrefix(r.Decision, "session ending") {
		return "", false
	}
	counts := map[control.Outcome]int{}
	attention := 0
	for _, j := range r.Jobs {
		counts[j.Outcome]++
		if j.Outcome == control.Failed || j.Outcome == control.Skipped && strings.Contains(j.Reason, "limit") {
			attention++
		}
	}
	var parts []string
	for _, o := range []struct {
		outcome control.Outcome
		verb    string
	}{{control.Kept, "kept"}, {control.Relaunched, "relaunched"}, {control.Reconnected, "reconnected by themselves"}, {control.Signalled, "signalled"},
		{control.Hooked, "handled by their hook"}, {control.Notified, "left to you"}} {
		if n := counts[o.outcome]; n > 0 {
			verb := o.verb
			if n == 1 && o.outcome == control.Reconnected {
				verb = "reconnected by itself"
			}
			if n == 1 && o.outcome == control.Hooked {
				verb = "handled by its hook"
			}
			parts = append(parts, fmt.Sprintf("%s %s", apps(n), verb))
		}
	}
	if attention > 0 {
		verb := "need"
		if attention == 1 {
			verb = "needs"
		}
		parts = append(parts, fmt.Sprintf("%d %s attention", attention, verb))
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing to do")
	}
	if strings.HasPrefix(r.Decision, resumedDecision) {
		// Not a restart of its own: the apps a pause held back.
		return fmt.Sprintf("Recovery resumed on the %s bus: %s", r.Bus, strings.Join(parts, ", ")), true
	}
	bus := r.Bus
	if bus != "" {
		bus = strings.ToUpper(bus[:1]) + bus[1:]
	}
	return fmt.Sprintf("%s bus restarted: %s", bus, strings.Join(parts, ", ")), true
}

func apps(n int) string {
	if n == 1 {
		return "1 app"
	}
	return fmt.Sprintf("%d apps", n)
}
