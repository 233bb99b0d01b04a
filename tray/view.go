package tray

import (
	"fmt"
	"strings"
	"time"

	"busmedic/assets"
	"busmedic/relaunch/control"
)

// state is what the icon says at a glance.
type state int

// The states, each with its own icon.
const (
	healthy    state = iota // every bus up, nothing to do
	recovering              // a recovery is running
	attention               // a job failed, someone fell off the bus, or the rules are broken
	busDown                 // a watched bus is down
	// disconnected: the daemon does not answer. It shares the attention
	// icon: the user has to look, and there is no bus news to give.
	disconnected
)

// Icon names the state's icon in package assets.
func (s state) Icon() string {
	switch s {
	case healthy:
		return assets.Healthy
	case recovering:
		return assets.Recovering
	case busDown:
		return assets.BusDown
	default:
		return assets.Attention
	}
}

func (s state) String() string {
	return [...]string{"healthy", "recovering", "attention", "bus-down", "disconnected"}[s]
}

// stateOf decides the icon for a status. A bus that is down outranks a
// recovery (which starts once the bus is back), which outranks what waits
// for the user.
func stateOf(st control.Status) state {
	for _, b := range st.Buses {
		if !b.Up {
			return busDown
		}
	}
	if r := st.LastRecovery; r != nil {
		if r.Ended.IsZero() {
			return recovering
		}
		for _, j := range r.Jobs {
			if !j.Outcome.Ended() {
				return recovering
			}
		}
	}
	if len(failedJobs(st)) > 0 || len(st.Casualties) > 0 || st.RulesError != "" || len(outdated(st)) > 0 {
		return attention
	}
	return healthy
}

// outdated returns the buses whose daemon was updated on disk and waits for
// a restart.
func outdated(st control.Status) []control.BusStatus {
	var out []control.BusStatus
	for _, b := range st.Buses {
		if b.Up && b.Outdated != "" {
			out = append(out, b)
		}
	}
	return out
}

func failedJobs(st control.Status) []control.Job {
	if st.LastRecovery == nil {
		return nil
	}
	var f []control.Job
	for _, j := range st.LastRecovery.Jobs {
		if j.Outcome == control.Failed {
			f = append(f, j)
		}
	}
	return f
}

// line is one menu entry as it should look.
type line struct {
	Title   string
	Tooltip string
	Enabled bool
	Checked bool
	Visible bool
	// ID is what a click acts on: an app's rule id or a casualty id.
	ID string
}

// Pool sizes: systray cannot remove menu items, so the lists are fixed
// pools of items shown and hidden; what does not fit is counted in a last
// line.
const (
	maxApps       = 24
	maxCasualties = 12
	maxKept       = 8
)

// view is the whole tray as it should look for one status.
type view struct {
	State state
	// Status is the item's StatusNotifierItem Status (itemStatus).
	Status string
	// Tooltip is the icon's tooltip; TooltipText its description, which
	// holds the reasons the menu's short labels leave out.
	Tooltip     string
	TooltipText string

	Session, System line
	Apps            line // the submenu's parent
	// AppItems are the apps, each a submenu whose one item,
	// AppRelaunch's, relaunches it: a relaunch takes two clicks, the
	// second on an item that says what it does.
	AppItems    []line
	AppRelaunch []line
	AppsNote    line // "no rules yet" or "… and 3 more"
	// Kept are the apps busmedic's keeper keeps ("dunst — kept through 3
	// restarts"), below the apps: lines to read, not to click.
	Kept       []line
	KeptNote   line // "… and 3 more"
	Fell       line
	Casualties []line // each with "Relaunch" and "Always relaunch" below
	FellNote   line
	// RestartBus is a submenu: the restart itself is RestartNow, in it,
	// which says what a restart does; a click on RestartBus restarts
	// nothing. RestartNote, in it too, says why the bus cannot be
	// restarted, instead of RestartNow.
	RestartBus, RestartNow, RestartNote line
	// RestartSystem shows only while an update of the system bus waits;
	// like RestartBus, it is a submenu.
	RestartSystem, RestartSystemNow line
	EditRules                       line
	History                         line
	Pause                           line
}

// env is what the view needs beyond the status: facts about this machine
// and the outcome of the last clicks, which the daemon does not report.
type env struct {
	Connected bool   // the daemon answers
	DaemonErr string // why not, when it does not
	Editor    string // path of busmedic-rules, or ""
	// RestartRefused is why the daemon refused the last "Restart session
	// bus".
	RestartRefused *control.RestartRefusal
	Now            time.Time
}

const notRunning = "busmedic is not running"

// render turns a status into the menu, icon and tooltip. It is a pure
// function: the tray applies its result and keeps nothing else.
func render(st control.Status, e env) view {
	var v view
	var details []string // the tooltip's description
	if !e.Connected {
		v.State = disconnected
		v.Tooltip = "busmedic: daemon not reachable, retrying"
		if e.DaemonErr != "" {
			details = append(details, e.DaemonErr)
		}
	} else {
		v.State = stateOf(st)
		v.Tooltip = tooltip(st, v.State, e.Now)
	}
	v.Status = itemStatus(v.State, st.Tray.WhenNeeded())
	v.Session = busLine(st, "session", "Session bus", e)
	v.System = busLine(st, "system", "System bus", e)

	v.Apps = line{Title: "Apps", Visible: true, Enabled: true}
	for i, a := range st.Apps {
		if i == maxApps {
			v.AppsNote = line{Title: fmt.Sprintf("… and %d more (busmedic status)", len(st.Apps)-maxApps), Visible: true}
			break
		}
		l, relaunch := appLine(a, e)
		v.AppItems = append(v.AppItems, l)
		v.AppRelaunch = append(v.AppRelaunch, relaunch)
	}
	if len(st.Apps) == 0 {
		v.AppsNote = line{Title: "No rules yet (busmedic rules add-from-pid PID)", Visible: true}
		if !e.Connected {
			v.AppsNote.Title = "No apps: " + notRunning
		}
	}

	for i, a := range st.Kept {
		if i == maxKept {
			v.KeptNote = line{Title: fmt.Sprintf("… and %d more kept (busmedic status)", len(st.Kept)-maxKept), Visible: true}
			break
		}
		v.Kept = append(v.Kept, line{Title: a.Brief(), Tooltip: "Kept by busmedic's keeper: " + a.Text(), Visible: true})
	}

	v.Fell = line{Title: "Fell off the bus", Visible: true, Enabled: true}
	if len(st.Casualties) > 0 {
		v.Fell.Title = fmt.Sprintf("Fell off the bus (%d)", len(st.Casualties))
	}
	for i, c := range st.Casualties {
		if i == maxCasualties {
			v.FellNote = line{Title: fmt.Sprintf("… and %d more (busmedic status)", len(st.Casualties)-maxCasualties), Visible: true}
			break
		}
		v.Casualties = append(v.Casualties, line{
			Title:   fmt.Sprintf("%s (%s bus, %s)", peerName(c), c.Bus, clock(c.At, e.Now)),
			Tooltip: c.Peer.String(),
			Enabled: e.Connected, Visible: true, ID: c.ID,
		})
	}
	if len(st.Casualties) == 0 {
		v.FellNote = line{Title: "Nobody: every app came back", Visible: true}
	}

	v.RestartBus = line{Title: "Restart session bus", Tooltip: "Restart the session bus; busmedic brings the apps back", Enabled: e.Connected, Visible: true}
	v.RestartNow = line{Title: "Restart now: " + relaunches(st), Tooltip: v.RestartBus.Tooltip, Enabled: e.Connected, Visible: true}
	for _, b := range outdated(st) {
		switch b.Name {
		case "session":
			v.RestartBus.Title = "Restart session bus (update installed)"
			details = append(details, "Restarting the session bus finishes the update: "+b.Outdated)
		case "system":
			v.RestartSystem = line{Title: "Restart system bus (update installed)", Enabled: e.Connected, Visible: true}
			v.RestartSystemNow = line{Title: "Restart now (asks for authorisation)", Enabled: e.Connected, Visible: true,
				Tooltip: "Finishes the update; every user's session is affected"}
			details = append(details, "Restarting the system bus finishes the update (every user's session is affected): "+b.Outdated)
		}
	}
	if st.SessionRestart != "" {
		v.RestartNow.Tooltip += " (" + st.SessionRestart + ")"
	}
	why := st.SessionRestartRefusal
	if why == nil {
		why = e.RestartRefused
	}
	if e.Connected && why != nil {
		// Who started the bus, in a few words, is what the user can
		// change; the whole reason, with what to do, is in the tooltip.
		v.RestartNow.Visible, v.RestartNow.Enabled = false, false
		v.RestartNote = line{Title: "Not possible: " + whoStarted(why), Tooltip: why.Reason, Visible: true}
		details = append(details, "The session bus cannot be restarted: "+why.Reason)
	}

	v.EditRules = line{Title: "Edit rules…", Tooltip: "Open the rules editor", Enabled: true, Visible: true}
	if e.Editor == "" {
		v.EditRules = disabled(v.EditRules, "not installed", "rules editor not installed")
	}

	// The recovery history is a tab of the rules editor; without it, the
	// command line shows it.
	v.History = line{Title: "Recovery history…", Tooltip: "Open the rules editor; its History tab lists the recoveries", Enabled: true, Visible: true}
	if e.Editor == "" {
		v.History = disabled(v.History, "busmedic history", "rules editor not installed; run busmedic history")
	}

	v.Pause = line{Title: "Pause automatic recovery", Tooltip: "While paused, busmedic watches but touches no app", Enabled: e.Connected, Checked: st.Paused, Visible: true}
	if !e.Connected {
		v.Pause.Tooltip = notRunning
	}
	v.TooltipText = strings.Join(details, "\n")
	return v
}

// itemStatus is the StatusNotifierItem Status for state s: NeedsAttention
// when something waits for the user (panels highlight the icon), Passive
// when all is well and the user chose tray = "when-needed" (panels may
// tuck the icon away), Active otherwise.
func itemStatus(s state, whenNeeded bool) string {
	switch {
	case s == attention:
		return statusNeedsAttention
	case s == healthy && whenNeeded:
		return statusPassive
	}
	return statusActive
}

// relaunches says what a restart of the session bus would do, in the
// words of the item that restarts it: how many apps busmedic would
// relaunch (those with a relaunch rule that are on the bus now).
func relaunches(st control.Status) string {
	n := 0
	for _, a := range st.Apps {
		if a.Enabled && a.Running && a.Bus != "system" && (a.Action == "" || a.Action == "relaunch") {
			n++
		}
	}
	switch n {
	case 0:
		return "no app to relaunch"
	case 1:
		return "1 app will be relaunched"
	}
	return fmt.Sprintf("%d apps will be relaunched", n)
}

// disabled greys an item out and says why: in a word or two in the title
// (menu items have no tooltip in the panels), the whole of it in the
// tooltip.
func disabled(l line, short, why string) line {
	l.Enabled = false
	l.Title += " (" + short + ")"
	l.Tooltip = why
	return l
}

// whoStarted says in a few words who started the bus that r is about
// ("started by dbus-launch"), which is what the user can change, or, for a
// refusal that is about something else (the bus did not answer, the
// restart failed), its reason.
func whoStarted(r *control.RestartRefusal) string {
	switch {
	case r.StartedBy != "":
		return "started by " + r.StartedBy
	case r.StarterExited:
		return "started by a program that has exited"
	case r.PID != 0:
		return "not started by systemd"
	}
	return r.Reason
}

func busLine(st control.Status, name, label string, e env) line {
	l := line{Visible: true} // info lines: disabled, nothing to click
	if !e.Connected {
		l.Title = label + ": unknown (" + notRunning + ")"
		return l
	}
	for _, b := range st.Buses {
		if b.Name != name {
			continue
		}
		if b.Up {
			l.Title = fmt.Sprintf("%s: up since %s", label, clock(b.Since, e.Now))
			l.Tooltip = fmt.Sprintf("%s, id %s", count(b.Peers, "peer", "peers"), b.ID)
		} else {
			l.Title = fmt.Sprintf("%s: down since %s", label, clock(b.Since, e.Now))
			if b.Reason != "" {
				l.Title += " (" + b.Reason + ")"
			}
			l.Tooltip = b.Address
		}
		return l
	}
	l.Title = label + ": not watched"
	return l
}

// appLine is an app's item, with the item of its submenu that relaunches
// it and says what that does: stop it first, when it is running.
func appLine(a control.AppStatus, e env) (app, relaunch line) {
	name := a.Name
	if name == "" {
		name = a.ID
	}
	app = line{Title: name + ": " + outcome(a, e.Now), Enabled: e.Connected, Visible: true, ID: a.ID}
	if j := a.Last; j != nil && j.Reason != "" {
		app.Tooltip = j.Reason
	}
	relaunch = line{Title: "Relaunch now", Tooltip: "Start it again", Enabled: e.Connected && a.Enabled, Visible: true, ID: a.ID}
	if a.Running {
		relaunch.Title = "Relaunch now (stops it and starts it again)"
		relaunch.Tooltip = "It is running: busmedic stops it, then starts it again"
	}
	switch {
	case !e.Connected:
		app.Tooltip = notRunning
	case !a.Enabled:
		app = disabled(app, "rule disabled", "its rule is disabled")
	}
	return app, relaunch
}

// outcome says what busmedic last did for an app, in a few words.
func outcome(a control.AppStatus, now time.Time) string {
	j := a.Last
	if j == nil {
		if a.Running {
			return "running"
		}
		return "not running"
	}
	switch j.Outcome {
	case control.Pending, control.Running:
		return "recovering…"
	default:
		// The reason, if any, is the item's tooltip and is in the
		// icon's.
		return fmt.Sprintf("%s %s", j.Outcome, clock(j.Started, now))
	}
}

func tooltip(st control.Status, s state, now time.Time) string {
	var parts []string
	switch s {
	case busDown:
		for _, b := range st.Buses {
			if !b.Up {
				parts = append(parts, fmt.Sprintf("%s bus down since %s", b.Name, clock(b.Since, now)))
			}
		}
	case recovering:
		r := st.LastRecovery
		done := 0
		for _, j := range r.Jobs {
			if j.Outcome.Ended() {
				done++
			}
		}
		parts = append(parts, fmt.Sprintf("recovering after the %s bus restart: %d of %d apps done", r.Bus, done, len(r.Jobs)))
	case attention:
		for _, j := range failedJobs(st) {
			parts = append(parts, fmt.Sprintf("%s failed: %s", j.App, j.Reason))
		}
		if n := len(st.Casualties); n > 0 {
			parts = append(parts, fmt.Sprintf("%d fell off the bus", n))
		}
		if st.RulesError != "" {
			parts = append(parts, "rules error: "+st.RulesError)
		}
		for _, b := range outdated(st) {
			parts = append(parts, fmt.Sprintf("update installed: restart the %s bus to finish it", b.Name))
		}
	default:
		parts = append(parts, "all buses up, "+count(len(st.Apps), "app", "apps")+" watched")
	}
	if st.Paused {
		parts = append(parts, "automatic recovery paused")
	}
	return "busmedic: " + strings.Join(parts, "; ")
}

func peerName(c control.Casualty) string {
	p := c.Peer
	switch {
	case len(p.Argv) > 0 && p.Argv[0] != "":
		return baseName(p.Argv[0])
	case p.Exe != "":
		return baseName(p.Exe)
	case len(p.Names) > 0:
		return p.Names[0]
	}
	return p.UniqueName
}

func baseName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// clock formats a time for a menu line: "12:03" today, "Mar 4 12:03"
// before, "?" when unknown.
func clock(t, now time.Time) string {
	if t.IsZero() {
		return "?"
	}
	t, now = t.Local(), now.Local()
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("15:04")
	}
	return t.Format("Jan 2 15:04")
}

// count is n with the noun that agrees with it: "1 app", "3 apps".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
