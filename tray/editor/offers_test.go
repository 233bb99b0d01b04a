package editor

import (
	"os"
	"testing"

	"fyne.io/fyne/v2/test"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// peersBackend is the stand-in daemon with dunst (a verified catalog app)
// and xfce4-panel on the session bus.
type peersBackend struct {
	*backend
	peers int // Peers calls
}

func (b *peersBackend) Peers() map[string][]watcher.Peer {
	b.mu.Lock()
	b.peers++
	b.mu.Unlock()
	uid := os.Getuid()
	return map[string][]watcher.Peer{"session": {
		{UniqueName: ":1.1", PID: 0},
		{UniqueName: ":1.7", PID: 700, UID: uid, Exe: "/usr/bin/dunst", Argv: []string{"dunst"},
			Names: []string{"org.freedesktop.Notifications"}, Cwd: "/home/ada"},
		{UniqueName: ":1.8", PID: 800, UID: uid, Exe: "/usr/bin/xfce4-panel", Argv: []string{"xfce4-panel"}, Cwd: "/home/ada"},
		{UniqueName: ":1.5", PID: 1234, UID: uid, Exe: "/usr/bin/nm-applet", Argv: []string{"nm-applet"}},
	}}
}

func (b *peersBackend) peersCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peers
}

// panelOnly is a user file whose one rule covers xfce4-panel, not dunst.
const panelOnly = `version = 1

[[app]]
id = "panel"
exe = "/usr/bin/xfce4-panel"
action = "signal"
signal = "SIGHUP"
`

func withOffers(t *testing.T) (*fixture, *peersBackend) {
	t.Helper()
	b := &peersBackend{backend: newBackend()}
	f := newFixture(t, fixtureOpts{user: panelOnly, control: serve(t, b)})
	f.q.waitFor(t, "an offer", func() bool { return len(f.ed.offerRows) > 0 })
	return f, b
}

func offered(ed *editor) []string {
	var ids []string
	for _, r := range ed.offerRows {
		ids = append(ids, r.offer.App.ID)
	}
	return ids
}

// TestOfferAddRule: dunst is offered (xfce4-panel has a rule, nm-applet is
// not verified); Add rule fills the form and writes nothing; once saved,
// the rule covers dunst and the offer goes.
func TestOfferAddRule(t *testing.T) {
	f, _ := withOffers(t)
	ed := f.ed
	if got := offered(ed); len(got) != 1 || got[0] != "dunst" {
		t.Fatalf("offers = %v, want [dunst]", got)
	}
	row := ed.offerRows[0]
	if want := "Dunst notifications is running and does not survive a bus restart."; row.text.Text != want {
		t.Errorf("offer text = %q, want %q", row.text.Text, want)
	}

	test.Tap(row.add)
	if ed.form.id.Text != "dunst" || ed.form.name.Text != "Dunst notifications" || ed.form.exe.Text != "/usr/bin/dunst" ||
		ed.form.bus.Selected != "session" || ed.origID != "" {
		t.Errorf("form from the offer: id %q name %q exe %q bus %q (orig %q)",
			ed.form.id.Text, ed.form.name.Text, ed.form.exe.Text, ed.form.bus.Selected, ed.origID)
	}
	if got := readFile(t, f.user); got != panelOnly {
		t.Fatalf("Add rule wrote the file before Save:\n%s", got)
	}
	if ed.saveBtn.Disabled() {
		t.Fatalf("Save disabled; errors %v", ed.errs)
	}

	test.Tap(ed.saveBtn)
	set, err := appdb.CheckFile(f.user)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := set.Lookup("dunst"); !ok || r.Exe != "/usr/bin/dunst" {
		t.Fatalf("saved rules lack dunst: %+v", set.Rules())
	}
	f.q.waitFor(t, "the offer to go", func() bool { return len(ed.offerRows) == 0 && len(ed.offerBox.Objects) == 0 })
}

// TestOfferNotNow hides the offer for the rest of the session, through
// later refreshes; a daemon that goes away takes the offers with it.
func TestOfferNotNow(t *testing.T) {
	f, b := withOffers(t)
	ed := f.ed
	test.Tap(ed.offerRows[0].later)
	if len(ed.offerRows) != 0 || len(ed.offerBox.Objects) != 0 {
		t.Fatalf("offers after Not now: %v", offered(ed))
	}
	if got := readFile(t, f.user); got != panelOnly {
		t.Fatalf("Not now wrote the file:\n%s", got)
	}

	// A new status refreshes the offers: dunst stays hidden.
	before := b.peersCalls()
	b.Set(func(s *control.Status) { s.Apps = nil })
	f.q.waitFor(t, "a refresh of the offers", func() bool { return b.peersCalls() > before && !ed.offersBusy })
	if len(ed.offerRows) != 0 {
		t.Errorf("offers after a refresh: %v", offered(ed))
	}
}

// TestOfferCoveredByRule: a rule written by another program and reloaded
// covers the app, and its offer goes.
func TestOfferCoveredByRule(t *testing.T) {
	f, _ := withOffers(t)
	writeRules(t, f.user, panelOnly+`
[[app]]
id = "notifications"
names = ["org.freedesktop.Notifications"]
`)
	f.ed.reloadFromDisk()
	f.q.waitFor(t, "the offer to go", func() bool { return len(f.ed.offerRows) == 0 })
}
