package tray

import (
	"strings"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/watcher"
)

var (
	now   = time.Date(2026, 3, 4, 15, 30, 0, 0, time.Local)
	noon  = time.Date(2026, 3, 4, 12, 3, 0, 0, time.Local)
	up    = control.BusStatus{Name: "session", Up: true, ID: "s1", Since: noon, Peers: 12}
	sysUp = control.BusStatus{Name: "system", Up: true, ID: "y1", Since: noon.Add(-24 * time.Hour)}
)

func recovery(ended bool, outcomes ...control.Outcome) *control.Recovery {
	r := &control.Recovery{Bus: "session", Started: noon}
	if ended {
		r.Ended = noon.Add(time.Second)
	}
	for i, o := range outcomes {
		r.Jobs = append(r.Jobs, control.Job{App: string(rune('a' + i)), Outcome: o, Reason: "exit status 1"})
	}
	return r
}

func TestStateOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   control.Status
		want state
	}{
		{"no buses yet", control.Status{}, healthy},
		{"all up", control.Status{Buses: []control.BusStatus{up, sysUp}}, healthy},
		{"recovered", control.Status{Buses: []control.BusStatus{up}, LastRecovery: recovery(true, control.Relaunched, control.Reconnected)}, healthy},
		{"bus down", control.Status{Buses: []control.BusStatus{{Name: "session"}, sysUp}}, busDown},
		{"down outranks failed", control.Status{Buses: []control.BusStatus{{Name: "system"}}, LastRecovery: recovery(true, control.Failed)}, busDown},
		{"recovery running", control.Status{Buses: []control.BusStatus{up}, LastRecovery: recovery(false, control.Relaunched)}, recovering},
		{"job pending", control.Status{Buses: []control.BusStatus{up}, LastRecovery: recovery(true, control.Pending)}, recovering},
		{"job running outranks failed", control.Status{LastRecovery: recovery(true, control.Failed, control.Running)}, recovering},
		{"job failed", control.Status{Buses: []control.BusStatus{up}, LastRecovery: recovery(true, control.Relaunched, control.Failed)}, attention},
		{"casualty", control.Status{Buses: []control.BusStatus{up}, Casualties: []control.Casualty{{ID: "c1"}}}, attention},
		{"rules error", control.Status{Buses: []control.BusStatus{up}, RulesError: "rules.toml:3: bad key"}, attention},
		{"update installed", control.Status{Buses: []control.BusStatus{up, {Name: "system", Up: true, Outdated: "replaced: /usr/bin/dbus-daemon"}}}, attention},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := stateOf(tc.st); got != tc.want {
				t.Errorf("stateOf = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRender(t *testing.T) {
	st := control.Status{
		Buses: []control.BusStatus{up, {Name: "system", Since: noon, Reason: "connection refused"}},
		Apps: []control.AppStatus{
			{ID: "dunst", Name: "Dunst", Enabled: true, Last: &control.Job{Outcome: control.Relaunched, Started: noon}},
			{ID: "nm", Enabled: true, Last: &control.Job{Outcome: control.Failed, Reason: "exit status 1", Started: noon}},
			{ID: "off", Name: "Off", Running: true},
		},
		Casualties: []control.Casualty{{ID: "c1", Bus: "session", At: noon, Peer: watcher.Peer{UniqueName: ":1.4", PID: 99, Argv: []string{"/usr/bin/blueman-applet"}}}},
		Paused:     true,
	}
	v := render(st, env{Connected: true, Now: now})
	for _, tc := range []struct {
		name string
		got  line
		want string
	}{
		{"session", v.Session, "Session bus: up since 12:03"},
		{"system", v.System, "System bus: down since 12:03 (connection refused)"},
		{"app relaunched", v.AppItems[0], "Dunst: relaunched 12:03"},
		{"app failed", v.AppItems[1], "nm: failed 12:03"},
		{"app relaunch", v.AppRelaunch[0], "Relaunch now"},
		{"running app relaunch", v.AppRelaunch[2], "Relaunch now (stops it and starts it again)"},
		{"app disabled", v.AppItems[2], "Off: running (rule disabled)"},
		{"casualty", v.Casualties[0], "blueman-applet (session bus, 12:03)"},
		{"fell", v.Fell, "Fell off the bus (1)"},
		{"edit rules", v.EditRules, "Edit rules… (not installed)"},
		{"history", v.History, "Recovery history… (busmedic history)"},
		{"restart", v.RestartBus, "Restart session bus"},
		{"restart now", v.RestartNow, "Restart now: no app to relaunch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got.Title != tc.want {
				t.Errorf("title %q, want %q", tc.got.Title, tc.want)
			}
		})
	}
	if v.State != busDown || !strings.Contains(v.Tooltip, "system bus down since 12:03") || !strings.Contains(v.Tooltip, "paused") {
		t.Errorf("state %v, tooltip %q", v.State, v.Tooltip)
	}
	if !v.Pause.Checked || !v.Pause.Enabled {
		t.Errorf("pause item %+v, want checked and enabled", v.Pause)
	}
	if v.AppItems[2].Enabled || !v.AppItems[0].Enabled || v.AppItems[0].ID != "dunst" {
		t.Errorf("app items %+v", v.AppItems)
	}
	if v.AppItems[1].Tooltip != "exit status 1" || v.AppRelaunch[2].Enabled || !v.AppRelaunch[1].Enabled || v.AppRelaunch[1].ID != "nm" {
		t.Errorf("app items %+v, relaunch items %+v: the reason in the tooltip, a disabled rule's relaunch greyed", v.AppItems, v.AppRelaunch)
	}
	if v.Status != statusActive {
		t.Errorf("item status %q with a bus down, want Active", v.Status)
	}
	if v.AppsNote.Visible || v.FellNote.Visible {
		t.Errorf("notes shown with lists full: %+v %+v", v.AppsNote, v.FellNote)
	}

	t.Run("refused restart", func(t *testing.T) {
		v := render(st, env{Connected: true, Now: now, RestartRefused: &control.RestartRefusal{Bus: "session", Reason: "refused", PID: 1235, StarterExited: true}, Editor: "/usr/bin/busmedic-rules"})
		if !v.RestartBus.Enabled || v.RestartBus.Title != "Restart session bus" || v.RestartNow.Visible ||
			v.RestartNote.Title != "Not possible: started by a program that has exited" || !strings.Contains(v.TooltipText, "refused") {
			t.Errorf("restart items %+v, %+v, %+v; tooltip %q", v.RestartBus, v.RestartNow, v.RestartNote, v.TooltipText)
		}
		if !v.EditRules.Enabled || v.EditRules.Title != "Edit rules…" {
			t.Errorf("edit rules item %+v", v.EditRules)
		}
		if !v.History.Enabled || v.History.Title != "Recovery history…" {
			t.Errorf("history item %+v", v.History)
		}
	})
	t.Run("disconnected", func(t *testing.T) {
		v := render(control.Status{}, env{DaemonErr: "no daemon", Now: now})
		if v.State != disconnected || v.State.Icon() != "attention" || !strings.Contains(v.Tooltip, "not reachable") {
			t.Errorf("state %v, tooltip %q", v.State, v.Tooltip)
		}
		for _, l := range []line{v.RestartBus, v.RestartNow, v.Pause} {
			if l.Enabled {
				t.Errorf("%+v: want disabled", l)
			}
		}
		// Said once, in the bus lines, not in every greyed label.
		if !strings.Contains(v.Session.Title, notRunning) || strings.Contains(v.Pause.Title, notRunning) || v.Status != statusActive {
			t.Errorf("session line %q, pause %q, status %q", v.Session.Title, v.Pause.Title, v.Status)
		}
	})
	t.Run("overflow", func(t *testing.T) {
		var st control.Status
		for range maxApps + 3 {
			st.Apps = append(st.Apps, control.AppStatus{ID: "x", Enabled: true})
		}
		v := render(st, env{Connected: true, Now: now})
		if len(v.AppItems) != maxApps || v.AppsNote.Title != "… and 3 more (busmedic status)" {
			t.Errorf("%d items, note %q", len(v.AppItems), v.AppsNote.Title)
		}
		if !v.FellNote.Visible || v.Fell.Title != "Fell off the bus" {
			t.Errorf("no casualties: %+v %+v", v.Fell, v.FellNote)
		}
	})
}

func TestClock(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{noon, "12:03"},
		{noon.Add(-24 * time.Hour), "Mar 3 12:03"},
		{time.Time{}, "?"},
	} {
		if got := clock(tc.t, now); got != tc.want {
			t.Errorf("clock(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

// An update waiting for a bus restart says so, and offers the restart of
// each updated bus, in a submenu like every restart.
func TestRenderUpdate(t *testing.T) {
	e := env{Connected: true, Now: now}
	st := control.Status{Buses: []control.BusStatus{up, sysUp}}
	if v := render(st, e); v.RestartSystem.Visible || strings.Contains(v.RestartBus.Title, "update") {
		t.Errorf("no update: restart items %+v / %+v", v.RestartBus, v.RestartSystem)
	}
	s, y := up, sysUp
	s.Outdated, y.Outdated = "replaced on disk since the bus started: /usr/bin/dbus-daemon", "/usr/bin/dbus-daemon changed"
	v := render(control.Status{Buses: []control.BusStatus{s, y}}, e)
	if v.State != attention || !strings.Contains(v.Tooltip, "update installed: restart the session bus to finish it") {
		t.Errorf("state %v tooltip %q", v.State, v.Tooltip)
	}
	if v.Status != statusNeedsAttention {
		t.Errorf("item status %q with an update waiting, want NeedsAttention", v.Status)
	}
	if v.RestartBus.Title != "Restart session bus (update installed)" || !v.RestartBus.Enabled || !v.RestartNow.Enabled {
		t.Errorf("session items %+v / %+v", v.RestartBus, v.RestartNow)
	}
	if !v.RestartSystem.Visible || !v.RestartSystem.Enabled || v.RestartSystem.Title != "Restart system bus (update installed)" ||
		!v.RestartSystemNow.Visible || !v.RestartSystemNow.Enabled {
		t.Errorf("system items %+v / %+v", v.RestartSystem, v.RestartSystemNow)
	}
	for _, want := range []string{"/usr/bin/dbus-daemon changed", "every user's session"} {
		if !strings.Contains(v.TooltipText, want) {
			t.Errorf("tooltip description %q lacks %q", v.TooltipText, want)
		}
	}
}

// A session bus that busmedic cannot restart says why before anyone
// clicks: in its submenu, instead of "Restart now", who started the bus in
// a few words, from the refusal's facts (not its words), and the whole
// reason in the icon's tooltip. The top label stays short.
func TestRenderRestartRefused(t *testing.T) {
	e := env{Connected: true, Now: now}
	for _, tc := range []struct {
		name    string
		refusal control.RestartRefusal
		note    string
	}{
		{"started by a program", control.RestartRefusal{PID: 42, StartedBy: "dbus-run-session", StartedByPID: 41,
			Reason: `the session bus (pid 42) was started by dbus-run-session, pid 41; to let busmedic restart it, run "busmedic run --manage-session-bus" in a session that does not start its own bus`},
			"Not possible: started by dbus-run-session"},
		{"its starter exited, in a scope", control.RestartRefusal{PID: 42, StarterExited: true, Unit: "session-2.scope", Reason: "anything"},
			"Not possible: started by a program that has exited"},
		{"starter unknown", control.RestartRefusal{PID: 42, Reason: "anything"},
			"Not possible: not started by systemd"},
		{"no answer", control.RestartRefusal{Reason: "the session bus does not answer (timeout)"},
			"Not possible: the session bus does not answer (timeout)"},
	} {
		tc.refusal.Bus = "session"
		v := render(control.Status{Buses: []control.BusStatus{up, sysUp}, SessionRestartRefusal: &tc.refusal}, e)
		if v.RestartBus.Title != "Restart session bus" || v.RestartNow.Visible || v.RestartNow.Enabled ||
			!v.RestartNote.Visible || v.RestartNote.Enabled || v.RestartNote.Title != tc.note {
			t.Errorf("%s: restart items %+v, %+v, %+v; want the note %q instead of Restart now", tc.name, v.RestartBus, v.RestartNow, v.RestartNote, tc.note)
		}
		if !strings.Contains(v.TooltipText, tc.refusal.Reason) {
			t.Errorf("%s: tooltip description %q, want the whole reason", tc.name, v.TooltipText)
		}
	}
	v := render(control.Status{Buses: []control.BusStatus{up, sysUp}, SessionRestart: "systemd user unit dbus.service"}, e)
	if !v.RestartBus.Enabled || !v.RestartNow.Enabled || v.RestartNote.Visible || !strings.Contains(v.RestartNow.Tooltip, "dbus.service") {
		t.Errorf("restart items %+v / %+v / %+v", v.RestartBus, v.RestartNow, v.RestartNote)
	}
}

// "Restart now" says what the restart will do: how many apps busmedic
// will relaunch, those with a relaunch rule on the session bus now.
func TestRelaunches(t *testing.T) {
	app := func(bus, action string, enabled, running bool) control.AppStatus {
		return control.AppStatus{ID: "a", Bus: bus, Action: action, Enabled: enabled, Running: running}
	}
	for _, tc := range []struct {
		apps []control.AppStatus
		want string
	}{
		{nil, "no app to relaunch"},
		{[]control.AppStatus{app("session", "relaunch", true, true)}, "1 app will be relaunched"},
		{[]control.AppStatus{app("session", "relaunch", true, true), app("both", "relaunch", true, true),
			app("session", "relaunch", true, false), app("session", "relaunch", false, true),
			app("system", "relaunch", true, true), app("session", "signal", true, true)}, "2 apps will be relaunched"},
	} {
		if got := relaunches(control.Status{Apps: tc.apps}); got != tc.want {
			t.Errorf("relaunches(%+v) = %q, want %q", tc.apps, got, tc.want)
		}
	}
}

// The item's Status speaks the panel's language: NeedsAttention when
// something waits for the user, Passive when all is well and the user
// chose tray = "when-needed", Active otherwise.
func TestItemStatus(t *testing.T) {
	for _, tc := range []struct {
		s          state
		whenNeeded bool
		want       string
	}{
		{healthy, false, statusActive},
		{healthy, true, statusPassive},
		{recovering, true, statusActive},
		{busDown, true, statusActive},
		{disconnected, true, statusActive},
		{attention, false, statusNeedsAttention},
		{attention, true, statusNeedsAttention},
	} {
		if got := itemStatus(tc.s, tc.whenNeeded); got != tc.want {
			t.Errorf("itemStatus(%v, when-needed %v) = %q, want %q", tc.s, tc.whenNeeded, got, tc.want)
		}
	}
	healthyStatus := control.Status{Buses: []control.BusStatus{up, sysUp}, Tray: &control.TrayStatus{Show: control.TrayWhenNeeded}}
	if v := render(healthyStatus, env{Connected: true, Now: now}); v.Status != statusPassive {
		t.Errorf("healthy with tray = when-needed: status %q, want Passive", v.Status)
	}
}

// The kept apps show under Apps, a line each, to read; what does not fit
// is counted.
func TestRenderKept(t *testing.T) {
	st := control.Status{Buses: []control.BusStatus{up, sysUp}, Kept: []control.KeptApp{
		{PID: 1234, Command: "dunst", Restarts: 3},
		{PID: 1235, Command: "irssi", Restarts: 1, Lost: []string{"org.example.Irc"}},
	}}
	v := render(st, env{Connected: true, Now: now})
	if len(v.Kept) != 2 || v.Kept[0].Title != "dunst — kept through 3 restarts" || v.Kept[1].Title != "irssi — kept, lost org.example.Irc" {
		t.Errorf("kept lines = %+v", v.Kept)
	}
	for _, l := range v.Kept {
		if !l.Visible || l.Enabled || !strings.HasPrefix(l.Tooltip, "Kept by busmedic's keeper: ") {
			t.Errorf("kept line %+v, want visible, not clickable, with a tooltip", l)
		}
	}
	for range maxKept {
		st.Kept = append(st.Kept, control.KeptApp{PID: 1, Command: "x"})
	}
	v = render(st, env{Connected: true, Now: now})
	if len(v.Kept) != maxKept || v.KeptNote.Title != "… and 2 more kept (busmedic status)" {
		t.Errorf("%d kept lines, note %q", len(v.Kept), v.KeptNote.Title)
	}
}
