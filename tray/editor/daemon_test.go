package editor

import (
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"busmedic/relaunch/control"
)

// connected is a fixture with a stand-in daemon, once the editor has its
// first status.
func connected(t *testing.T) (*fixture, *backend) {
	t.Helper()
	b := newBackend()
	sock := serve(t, b)
	f := newFixture(t, fixtureOpts{user: userRules, control: sock})
	f.q.waitFor(t, "the daemon's status", func() bool { return f.ed.status != nil })
	return f, b
}

func TestLiveStateInList(t *testing.T) {
	f, _ := connected(t)
	if f.ed.daemonBanner.Visible() {
		t.Errorf("banner shown with the daemon running: %q", f.ed.daemonText.Text)
	}
	row := f.ed.list.CreateItem()
	f.ed.list.UpdateItem(0, row)
	var texts []string
	for _, o := range row.(*fyne.Container).Objects[0].(*fyne.Container).Objects {
		texts = append(texts, o.(*widget.Label).Text)
	}
	want := []string{"Dunst", "relaunch · session bus", "running (pid 4242) · last: relaunched in 340ms (pid 4242)"}
	if !slices.Equal(texts, want) {
		t.Errorf("row = %q, want %q", texts, want)
	}
}

func TestShowPlanAndRelaunch(t *testing.T) {
	f, b := connected(t)
	ed := f.ed
	f.selectRule(t, "dunst")
	if ed.planBtn.Disabled() || ed.relaunchBtn.Disabled() {
		t.Fatal("Show plan or Relaunch now disabled with the daemon running")
	}
	test.Tap(ed.planBtn)
	f.q.waitFor(t, "the plan", func() bool { return strings.Contains(ed.tryText.Text, "If the session bus restarted now") })
	for _, want := range []string{"matches pid 4242", "after 1s", "relaunch it", "command: /usr/bin/dunst -verbosity crit", "in: /home/ada"} {
		if !strings.Contains(ed.tryText.Text, want) {
			t.Errorf("plan lacks %q:\n%s", want, ed.tryText.Text)
		}
	}

	// dunst runs: the editor asks before the daemon stops it.
	test.Tap(ed.relaunchBtn)
	f.q.waitFor(t, "the question", func() bool { return ed.relaunchAsk != nil && ed.win.Canvas().Overlays().Top() != nil })
	if markup := test.RenderObjectToMarkup(ed.win.Canvas().Overlays().Top()); !strings.Contains(markup, "dunst is running (pid 4242) on the session bus: relaunching it would stop it and start it again.") {
		t.Errorf("the question does not say what a relaunch does:\n%s", markup)
	}
	b.mu.Lock()
	asked := slices.Clone(b.asked)
	b.mu.Unlock()
	if len(asked) != 0 {
		t.Fatalf("a running app relaunched before the user said yes: %v", asked)
	}
	ed.relaunchAsk.Confirm()
	f.q.waitFor(t, "the relaunch outcome", func() bool { return strings.Contains(ed.tryText.Text, "relaunched") })
	if want := "dunst: relaunched in 250ms (pid 4343)"; ed.tryText.Text != want || ed.tryText.Importance != widget.SuccessImportance {
		t.Errorf("outcome = %q, want %q", ed.tryText.Text, want)
	}
	b.mu.Lock()
	asked = slices.Clone(b.asked)
	b.mu.Unlock()
	if !slices.Equal(asked, []string{"dunst"}) {
		t.Errorf("daemon asked to relaunch %v", asked)
	}

	// A rule that is not on the bus: the plan says so.
	f.selectRule(t, "panel")
	test.Tap(ed.planBtn)
	f.q.waitFor(t, "the empty plan", func() bool { return strings.Contains(ed.tryText.Text, "No process of this app") })
}

// "Relaunch now" stays off while its relaunch runs, though the daemon's
// statuses come meanwhile (each used to turn it on again, and a second
// click relaunched the app a second time).
func TestRelaunchButtonOffWhileItRuns(t *testing.T) {
	f, b := connected(t)
	ed := f.ed
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	b.mu.Lock()
	b.hold, b.held = hold, held
	b.mu.Unlock()
	f.selectRule(t, "dunst")
	test.Tap(ed.relaunchBtn)
	f.q.waitFor(t, "the question", func() bool { return ed.relaunchAsk != nil && ed.win.Canvas().Overlays().Top() != nil })
	ed.relaunchAsk.Confirm()
	select {
	case <-held:
	case <-time.After(deadline):
		t.Fatal("the relaunch did not reach the daemon")
	}
	b.Set(func(st *control.Status) { st.Buses[0].ID = "def" })
	f.q.waitFor(t, "the status of the relaunch", func() bool { return ed.status != nil && ed.status.Buses[0].ID == "def" })
	if !ed.relaunchBtn.Disabled() {
		t.Error("Relaunch now is on again while its relaunch runs")
	}
	close(hold)
	f.q.waitFor(t, "the relaunch outcome", func() bool { return strings.Contains(ed.tryText.Text, "relaunched") })
	if ed.relaunchBtn.Disabled() {
		t.Error("Relaunch now still off after the relaunch ended")
	}
}

// Cancel leaves a running app alone, and says so.
func TestRelaunchCancelled(t *testing.T) {
	f, b := connected(t)
	ed := f.ed
	f.selectRule(t, "dunst")
	test.Tap(ed.relaunchBtn)
	f.q.waitFor(t, "the question", func() bool { return ed.relaunchAsk != nil })
	ed.relaunchAsk.Dismiss()
	if want := "Not relaunched: dunst keeps running."; ed.tryText.Text != want {
		t.Errorf("after Cancel: %q, want %q", ed.tryText.Text, want)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.asked) != 0 {
		t.Errorf("relaunched after Cancel: %v", b.asked)
	}
}

func TestHistoryTab(t *testing.T) {
	f, b := connected(t)
	ed := f.ed
	ed.tabs.SelectIndex(1)
	f.q.waitFor(t, "the history", func() bool { return len(ed.historyBox.Objects) > 0 })
	var lines []string
	for _, o := range ed.historyBox.Objects {
		if l, ok := o.(*widget.Label); ok {
			lines = append(lines, strings.TrimSpace(l.Text))
		}
	}
	if len(lines) != 4 || !strings.Contains(lines[0], "system bus restarted") || !strings.Contains(lines[2], "session bus restarted, down 1.2s, recovered in 2s") {
		t.Fatalf("history, want newest first:\n%s", strings.Join(lines, "\n"))
	}
	if lines[1] != "panel: failed: no such process (signal)" || lines[3] != "dunst: relaunched in 800ms (pid 7) (relaunch)" {
		t.Errorf("jobs:\n%s", strings.Join(lines, "\n"))
	}

	// A new recovery reloads the open History tab.
	before := b.historyCalls()
	b.Set(func(s *control.Status) {
		s.LastRecovery = &control.Recovery{Bus: "session", ID: "new", Started: time.Now()}
	})
	f.q.waitFor(t, "the history to reload", func() bool { return b.historyCalls() > before })
}

// TestPeerPicker opens the picker, searches by keyboard, and picks with
// Enter: the form is filled from the peer.
func TestPeerPicker(t *testing.T) {
	f, _ := connected(t)
	ed := f.ed
	c := ed.win.Canvas()
	shortcut(t, c, fyne.KeyP)
	f.q.waitFor(t, "the picker", func() bool { return c.Overlays().Top() != nil })
	markup := test.RenderObjectToMarkup(c.Overlays().Top())
	if !strings.Contains(markup, "nm-applet --indicator") || !strings.Contains(markup, "/sbin/init") {
		t.Errorf("picker lacks the peers:\n%s", markup)
	}
	search, ok := c.Focused().(*widget.Entry)
	if !ok {
		t.Fatalf("focus on %T, want the search box", c.Focused())
	}
	test.Type(search, "network")
	search.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn})
	if c.Overlays().Top() != nil {
		t.Error("picker still open after Enter")
	}
	if ed.form.id.Text != "nm-applet" || ed.form.bus.Selected != "session" || ed.form.exe.Text != "/usr/bin/nm-applet" {
		t.Errorf("form from the peer: id %q bus %q exe %q", ed.form.id.Text, ed.form.bus.Selected, ed.form.exe.Text)
	}
}

func TestAddFromCasualties(t *testing.T) {
	f, _ := connected(t)
	ed := f.ed
	ed.pickCasualty()
	c := ed.win.Canvas()
	if top := c.Overlays().Top(); top == nil || !strings.Contains(test.RenderObjectToMarkup(top), "blueman-applet") {
		t.Fatal("the casualties picker does not list blueman-applet")
	}
	c.Focused().(*widget.Entry).TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn})
	if ed.form.id.Text != "blueman-applet" || !slices.Equal(ed.form.names.values(), []string{"org.blueman.Applet"}) {
		t.Errorf("form from the casualty: id %q names %v", ed.form.id.Text, ed.form.names.values())
	}
}

// TestDaemonGoesAway shows the banner when the daemon stops.
func TestDaemonGoesAway(t *testing.T) {
	b := newBackend()
	sock := serveStoppable(t, b)
	f := newFixture(t, fixtureOpts{user: userRules, control: sock.path})
	f.q.waitFor(t, "the daemon's status", func() bool { return f.ed.status != nil })
	sock.stop()
	f.q.waitFor(t, "the banner", func() bool { return f.ed.status == nil && f.ed.daemonBanner.Visible() })
}
