package daemon

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"busmedic/appdb"
	"busmedic/assets"
	"busmedic/relaunch"
	"busmedic/relaunch/busrestart"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// The daemon's decisions, each a pure function, as table tests.

func TestRecoveryNotice(t *testing.T) {
	relaunched := control.Recovery{Bus: "session", Jobs: []control.Job{{App: "dunst", Outcome: control.Relaunched}}}
	update := "D-Bus updated without reboot: 1 app recovered, 0 need attention"
	for _, tc := range []struct {
		name       string
		r          control.Recovery
		update     string
		fromUpdate bool
		want       string // the body; "" for no notification
		critical   bool
	}{
		{"a restart no one ordered: the summary", relaunched, "", false,
			"Session bus restarted: 1 app relaunched", false},
		{"after an update: the update report", relaunched, update, true, update, false},
		{"after an update with no app concerned: still the report",
			control.Recovery{Bus: "system"}, "D-Bus updated without reboot: 0 apps recovered, 0 need attention", true,
			"D-Bus updated without reboot: 0 apps recovered, 0 need attention", false},
		{"no app concerned", control.Recovery{Bus: "session"}, "", false, "", false},
		{"the session is ending", control.Recovery{Bus: "session", Decision: "session ending: logout",
			Jobs: []control.Job{{App: "dunst", Outcome: control.Skipped}}}, "", false, "", false},
		{"a recovery failed: critical", control.Recovery{Bus: "session", Jobs: []control.Job{{App: "dunst", Outcome: control.Relaunched},
			{App: "panel", Outcome: control.Failed, Reason: "exited with status 1"}}}, "", false,
			"Session bus restarted: 1 app relaunched, 1 needs attention", true},
		{"after an update, a recovery failed: critical", control.Recovery{Bus: "session",
			Jobs: []control.Job{{App: "panel", Outcome: control.Failed}}}, update, true, update, true},
	} {
		n, ok := recoveryNotice(tc.r, tc.update, tc.fromUpdate)
		if ok != (tc.want != "") || n.Body != tc.want || n.Critical != tc.critical {
			t.Errorf("%s: notice %+v, %v; want body %q, critical %v", tc.name, n, ok, tc.want, tc.critical)
			continue
		}
		want := []relaunch.Action{{Key: showAction, Label: "Show", Command: "busmedic history"}}
		if ok && (n.Title != "busmedic" || !slices.Equal(n.Actions, want)) {
			t.Errorf("%s: title %q, actions %v", tc.name, n.Title, n.Actions)
		}
	}
}

// needsAttention and relaunch.Summary agree on which apps need attention:
// the notification is critical exactly when its summary says so.
func TestNeedsAttentionAsSummary(t *testing.T) {
	for _, o := range []control.Outcome{control.Relaunched, control.Reconnected, control.Signalled, control.Hooked,
		control.Notified, control.Failed, control.Skipped, control.Cancelled} {
		for _, reason := range []string{"", "restart limit reached: crashed 5 times in 60s", "paused"} {
			r := control.Recovery{Bus: "session", Jobs: []control.Job{{App: "a", Outcome: control.Relaunched}, {App: "b", Outcome: o, Reason: reason}}}
			line, _ := relaunch.Summary(r)
			if got, want := needsAttention(r), strings.Contains(line, "attention"); got != want {
				t.Errorf("%s %q: needsAttention %v, summary %q", o, reason, got, line)
			}
		}
	}
}

func TestOfferNotice(t *testing.T) {
	for _, tc := range []struct {
		app       assets.CatalogApp
		path      string
		wantTitle string
		wantBody  string
	}{
		{assets.CatalogApp{ID: "dunst", Name: "Dunst", Why: "it exits with its bus"}, "/home/ada/.config/busmedic/apps.toml",
			"Relaunch dunst after a bus restart?",
			"Dunst is running and does not survive a restart of the session bus: it exits with its bus.\n" +
				"busmedic can start it again each time. The rule goes in /home/ada/.config/busmedic/apps.toml."},
		{assets.CatalogApp{ID: "xfce4-panel", Name: "Xfce panel", Why: "it goes deaf"}, "/tmp/apps.toml",
			"Relaunch xfce4-panel after a bus restart?",
			"Xfce panel is running and does not survive a restart of the session bus: it goes deaf.\n" +
				"busmedic can start it again each time. The rule goes in /tmp/apps.toml."},
		{assets.CatalogApp{ID: "lxqt-panel", Name: "LXQt panel", Behaviour: assets.Deaf, Why: "it stays alive but deaf"}, "/tmp/apps.toml",
			"Relaunch lxqt-panel after a bus restart?",
			"LXQt panel is running and does not survive a restart of the session bus: it stays alive but deaf.\n" +
				"busmedic can stop it and start it again each time. The rule goes in /tmp/apps.toml."},
	} {
		n := offerNotice(appdb.Offer{App: tc.app}, tc.path)
		if n.Title != tc.wantTitle || n.Body != tc.wantBody || n.Critical {
			t.Errorf("offer of %s:\n%q\n%q\nwant\n%q\n%q, not critical", tc.app.ID, n.Title, n.Body, tc.wantTitle, tc.wantBody)
		}
		want := []relaunch.Action{{Key: offerAdd, Label: "Add rule", Command: "busmedic rules edit"}, {Key: offerNotNow, Label: "Not now"}}
		if !slices.Equal(n.Actions, want) {
			t.Errorf("offer of %s: actions %v", tc.app.ID, n.Actions)
		}
	}
}

func TestFreeRuleID(t *testing.T) {
	for _, tc := range []struct {
		base  string
		taken []string
		want  string
	}{
		{"dunst", nil, "dunst"},
		{"dunst", []string{"xterm"}, "dunst"},
		{"dunst", []string{"dunst"}, "dunst-2"},
		{"dunst", []string{"dunst", "dunst-2", "dunst-3"}, "dunst-4"},
		{"dunst", []string{"dunst", "dunst-3"}, "dunst-2"},
	} {
		if got := freeRuleID(tc.base, func(id string) bool { return slices.Contains(tc.taken, id) }); got != tc.want {
			t.Errorf("freeRuleID(%q) with %q taken = %q, want %q", tc.base, tc.taken, got, tc.want)
		}
	}
}

func TestRuleForCasualty(t *testing.T) {
	peer := watcher.Peer{PID: 42, Exe: "/usr/bin/nm-applet", Argv: []string{"nm-applet"},
		Names: []string{"org.freedesktop.network-manager-applet"}, Unit: "app-nm.service"}
	for _, tc := range []struct {
		bus      string
		wantBus  appdb.Bus
		wantUnit string
	}{
		{"session", appdb.BusSession, "app-nm.service"},
		// A system service's unit is not the user manager's to start.
		{"system", appdb.BusSystem, ""},
	} {
		r := ruleForCasualty(control.Casualty{ID: "c1", Bus: tc.bus, Peer: peer})
		if r.Bus != tc.wantBus || r.Unit != tc.wantUnit {
			t.Errorf("a %s-bus casualty's rule has bus %q, unit %q; want %q, %q", tc.bus, r.Bus, r.Unit, tc.wantBus, tc.wantUnit)
		}
	}
}

func TestDescribeRestart(t *testing.T) {
	managed := &busrestart.Managed{}
	for _, tc := range []struct {
		name   string
		m      busrestart.Method
		err    error
		how    string
		refuse string // the refusal's reason
		known  bool
	}{
		{"a way", managed, nil, managed.String(), "", true},
		{"none, and why", nil, &control.RestartRefusal{Bus: "session", Reason: "the session bus (pid 12) was started by dbus-launch, pid 11", PID: 12},
			"", "the session bus (pid 12) was started by dbus-launch, pid 11", true},
		{"none, wrapped", nil, fmt.Errorf("find: %w", &control.RestartRefusal{Bus: "session", Reason: "no answer"}),
			"", "no answer", true},
		{"not found out", nil, errors.New("connection refused"), "", "", false},
	} {
		how, refused, known := describeRestart(tc.m, tc.err)
		reason := ""
		if refused != nil {
			reason = refused.Reason
		}
		if how != tc.how || reason != tc.refuse || known != tc.known {
			t.Errorf("%s: %q, %q, %v; want %q, %q, %v", tc.name, how, reason, known, tc.how, tc.refuse, tc.known)
		}
	}
}
