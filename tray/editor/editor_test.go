package editor

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/test"

	"busmedic/appdb"
	"busmedic/watcher"
)

// TestBadValueCannotBeSaved types bad values and finds the error at the
// field and Save disabled; fixing the value enables Save again.
func TestBadValueCannotBeSaved(t *testing.T) {
	f := newFixture(t, fixtureOpts{user: userRules})
	f.selectRule(t, "dunst")
	ed := f.ed
	if !ed.saveBtn.Disabled() {
		t.Fatal("Save enabled before any change")
	}

	test.Type(ed.form.grace.value, "x") // "1" becomes "1x"
	msg := ed.form.messages["grace"].err
	if !msg.Visible() || !strings.Contains(msg.Text, "want a number") {
		t.Fatalf("grace error = %q (visible %v), want it shown at the field", msg.Text, msg.Visible())
	}
	if !ed.saveBtn.Disabled() {
		t.Fatal("Save enabled with a bad grace")
	}
	ed.save() // Ctrl+S reaches save even when the button is disabled
	if got := readFile(t, f.user); got != userRules {
		t.Fatalf("a bad value was saved:\n%s", got)
	}

	test.Type(ed.form.grace.value, "\b") // back to "1"
	ed.form.grace.value.SetText("3")
	if msg.Visible() {
		t.Errorf("grace error still shown: %q", msg.Text)
	}
	if ed.saveBtn.Disabled() {
		t.Error("Save disabled with a good value")
	}

	// An appdb error shows at its field too: a bad bus name.
	ed.form.names.rows[0].SetText("Notifications")
	names := ed.form.messages["names"].err
	if !names.Visible() || !strings.Contains(names.Text, "bad bus name") || !ed.saveBtn.Disabled() {
		t.Errorf("names error = %q (visible %v), Save disabled %v", names.Text, names.Visible(), ed.saveBtn.Disabled())
	}
	// And one that comes from two keys: action signal without a signal.
	ed.form.names.rows[0].SetText("org.freedesktop.Notifications")
	ed.form.action.SetSelected("signal")
	if sig := ed.form.messages["signal"].err; !sig.Visible() || !ed.saveBtn.Disabled() {
		t.Errorf("signal error = %q (visible %v)", sig.Text, sig.Visible())
	}
	ed.form.signal.SetText("usr1")
	if !ed.saveBtn.Disabled() == false {
		t.Error("Save disabled with a complete signal rule")
	}
}

// TestSavePreservesOtherRules edits one rule and saves: the file keeps the
// other rule, the settings and the comments, and a backup.
func TestSavePreservesOtherRules(t *testing.T) {
	f := newFixture(t, fixtureOpts{user: userRules})
	f.selectRule(t, "dunst")
	ed := f.ed
	ed.form.name.SetText("Dunst notifications")
	ed.form.grace.set(duration{"5", "s"})
	ed.form.env.add.OnTapped()
	ed.form.env.rows[0][0].SetText("LANG")
	ed.form.env.rows[0][1].SetText("C.UTF-8")
	if ed.saveBtn.Disabled() {
		t.Fatalf("Save disabled; errors %v", ed.errs)
	}
	test.Tap(ed.saveBtn)

	got := readFile(t, f.user)
	for _, keep := range []string{"# my rules: keep this comment", "idle_minutes = 7", "# the notification daemon",
		"id = \"panel\"\nexe = \"/usr/bin/xfce4-panel\"\naction = \"signal\"\nsignal = \"SIGHUP\"\n"} {
		if !strings.Contains(got, keep) {
			t.Errorf("saved file lost %q:\n%s", keep, got)
		}
	}
	set, err := appdb.CheckFile(f.user)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := set.Lookup("dunst")
	if r.Name != "Dunst notifications" || r.Grace.String() != "5s" || r.Env["LANG"] != "C.UTF-8" {
		t.Errorf("saved rule = %+v", r)
	}
	if bak := readFile(t, f.user+".bak"); bak != userRules {
		t.Errorf("backup = %q, want the previous file", bak)
	}
	if !ed.saveBtn.Disabled() || ed.dirty() {
		t.Error("still dirty after saving")
	}
	if ed.entries[0].Rule.Name != "Dunst notifications" {
		t.Errorf("list shows %q", ed.entries[0].Rule.Name)
	}

	// Renaming the id replaces the entry rather than adding one (at the
	// end of the file, as appdb appends).
	ed.form.id.SetText("dunst2")
	test.Tap(ed.saveBtn)
	set, err = appdb.CheckFile(f.user)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range set.Rules() {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{"panel", "dunst2"}) {
		t.Errorf("ids after rename = %v", ids)
	}
}

func TestRevert(t *testing.T) {
	f := newFixture(t, fixtureOpts{user: userRules})
	f.selectRule(t, "panel")
	ed := f.ed
	ed.form.exe.SetText("/usr/bin/other")
	ed.form.action.SetSelected("relaunch")
	if ed.revertBtn.Disabled() || !ed.dirty() {
		t.Fatal("Revert disabled after an edit")
	}
	test.Tap(ed.revertBtn)
	if ed.form.exe.Text != "/usr/bin/xfce4-panel" || ed.form.action.Selected != "signal" || ed.form.signal.Text != "SIGHUP" {
		t.Errorf("after Revert: exe %q action %q signal %q", ed.form.exe.Text, ed.form.action.Selected, ed.form.signal.Text)
	}
	if ed.dirty() || !ed.saveBtn.Disabled() {
		t.Error("dirty after Revert")
	}
	if got := readFile(t, f.user); got != userRules {
		t.Errorf("Revert wrote the file:\n%s", got)
	}

	// An edit undone by hand is not a change either.
	ed.form.exe.SetText("/usr/bin/other")
	ed.form.exe.SetText("/usr/bin/xfce4-panel")
	if ed.dirty() {
		t.Error("dirty after undoing the edit by hand")
	}
}

func TestAddFromPeerFillsForm(t *testing.T) {
	f := newFixture(t, fixtureOpts{user: userRules})
	ed := f.ed
	ed.AddFromPeer("system", watcher.Peer{PID: 77, UID: os.Getuid(), Exe: "/usr/bin/nm-applet",
		Argv: []string{"nm-applet", "--indicator"}, Names: []string{"org.freedesktop.network-manager-applet", ":1.5"}, Cwd: "/home/ada"})
	frm := ed.form
	if frm.id.Text != "nm-applet" || frm.exe.Text != "/usr/bin/nm-applet" || frm.bus.Selected != "system" || frm.workdir.Text != "/home/ada" {
		t.Errorf("form: id %q exe %q bus %q workdir %q", frm.id.Text, frm.exe.Text, frm.bus.Selected, frm.workdir.Text)
	}
	if got := frm.names.values(); !slices.Equal(got, []string{"org.freedesktop.network-manager-applet"}) {
		t.Errorf("names = %v", got)
	}
	if got := frm.exec.values(); !slices.Equal(got, []string{"nm-applet", "--indicator"}) {
		t.Errorf("exec = %v", got)
	}
	if ed.saveBtn.Disabled() {
		t.Fatalf("Save disabled for a new rule from a peer: %v", ed.errs)
	}
	test.Tap(ed.saveBtn)
	set, err := appdb.CheckFile(f.user)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := set.Lookup("nm-applet"); !ok || r.Bus != appdb.BusSystem {
		t.Errorf("saved: %+v %v", r, ok)
	}

	// The same app again gets a fresh id instead of replacing the rule.
	ed.AddFromPeer("session", watcher.Peer{PID: 78, Exe: "/usr/bin/nm-applet", Argv: []string{"nm-applet"}})
	if frm.id.Text != "nm-applet-2" {
		t.Errorf("second id = %q", frm.id.Text)
	}
}

func TestBannerWithoutDaemon(t *testing.T) {
	f := newFixture(t, fixtureOpts{user: userRules})
	f.q.waitFor(t, "the not-running banner", func() bool {
		return f.ed.daemonBanner.Visible() && strings.Contains(f.ed.daemonText.Text, "not running")
	})
	f.selectRule(t, "dunst")
	if !f.ed.planBtn.Disabled() || !f.ed.relaunchBtn.Disabled() {
		t.Error("Show plan or Relaunch now enabled without a daemon")
	}
	// Editing still works.
	f.ed.form.name.SetText("D")
	test.Tap(f.ed.saveBtn)
	if !strings.Contains(readFile(t, f.user), `name = "D"`) {
		t.Error("not saved without a daemon")
	}
}

func TestSystemRuleOverride(t *testing.T) {
	f := newFixture(t, fixtureOpts{user: userRules, system: `[[app]]
id = "tray"
argv0 = "tray"
grace = "4s"
`})
	ed := f.ed
	f.selectRule(t, "tray")
	if !ed.readOnly || !ed.form.id.Disabled() || !ed.form.grace.value.Disabled() || !ed.saveBtn.Disabled() || ed.overrideBtn.Hidden {
		t.Fatal("a system rule is editable, or has no Override button")
	}
	test.Tap(ed.overrideBtn)
	if ed.readOnly || ed.form.grace.value.Disabled() {
		t.Fatal("override left the form read-only")
	}
	ed.form.grace.set(duration{"9", "s"})
	test.Tap(ed.saveBtn)
	set, err := appdb.CheckFile(f.user)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := set.Lookup("tray"); !ok || r.Grace.String() != "9s" || r.Argv0 != "tray" {
		t.Errorf("override saved as %+v", r)
	}
	// The list now has the user's copy only.
	n := 0
	for _, en := range ed.entries {
		if en.Rule.ID == "tray" {
			n++
			if en.System {
				t.Error("the system rule is still listed")
			}
		}
	}
	if n != 1 {
		t.Errorf("%d entries for tray", n)
	}
}

func TestExternalEditOfferedForReload(t *testing.T) {
	f := newFixture(t, fixtureOpts{user: userRules})
	f.selectRule(t, "dunst")
	ed := f.ed
	// Our own save is not an external edit.
	ed.form.name.SetText("Mine")
	test.Tap(ed.saveBtn)

	// Another program replaces the file by renaming, as editors do.
	next := readFile(t, f.user) + "\n[[app]]\nid = \"added\"\nargv0 = \"x\"\n"
	if err := appdb.WriteAtomic(f.user, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	f.q.waitFor(t, "the changed-on-disk banner", func() bool { return ed.fileBanner.Visible() })

	// Saving now would lose that change: it is refused.
	ed.form.name.SetText("Mine again")
	test.Tap(ed.saveBtn)
	if !strings.Contains(ed.fileText.Text, "not saved") {
		t.Errorf("banner = %q after a conflicting save", ed.fileText.Text)
	}
	ed.reloadFromDisk()
	if ed.fileBanner.Visible() {
		t.Error("banner still shown after reload")
	}
	if ed.form.name.Text != "Mine again" {
		t.Error("reload dropped the edit in the form")
	}
	test.Tap(ed.saveBtn)
	set, err := appdb.CheckFile(f.user)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := set.Lookup("dunst")
	if _, ok := set.Lookup("added"); !ok || r.Name != "Mine again" {
		t.Errorf("after reload and save: dunst %q, added present %v", r.Name, ok)
	}
}

// Ctrl-C or SIGTERM (the end of Run's context) closes the window as its
// close button does: with unsaved changes, the user is asked first.
func TestSignalAsksFirst(t *testing.T) {
	f := newFixture(t, fixtureOpts{user: userRules})
	f.selectRule(t, "dunst")
	ed := f.ed
	ed.form.name.SetText("changed")
	ctx, cancel := context.WithCancel(context.Background())
	defer closeWhenDone(ctx, ed)()
	cancel()
	f.q.waitFor(t, "the question", func() bool { return ed.win.Canvas().Overlays().Top() != nil })
	if markup := test.RenderObjectToMarkup(ed.win.Canvas().Overlays().Top()); !strings.Contains(markup, "Discard your changes to dunst?") {
		t.Errorf("dialog = %s", markup)
	}
}

func TestCloseGuard(t *testing.T) {
	f := newFixture(t, fixtureOpts{user: userRules})
	f.selectRule(t, "dunst")
	ed := f.ed
	ed.form.name.SetText("changed")
	ed.requestClose()
	top := ed.win.Canvas().Overlays().Top()
	if top == nil {
		t.Fatal("closing with unsaved changes asked nothing")
	}
	if !strings.Contains(test.RenderObjectToMarkup(top), "Discard your changes to dunst?") {
		t.Errorf("dialog = %s", test.RenderObjectToMarkup(top))
	}
	// Switching rules asks too, and keeps the edit when told to.
	ed.win.Canvas().Overlays().Remove(top)
	f.selectRule(t, "panel")
	if ed.win.Canvas().Overlays().Top() == nil || ed.origID != "dunst" {
		t.Error("switching rules dropped unsaved changes without asking")
	}
}

// TestKeyboard drives the window with keys alone: a shortcut for a new
// rule, Tab between fields, typing, and Ctrl+S.
func TestKeyboard(t *testing.T) {
	f := newFixture(t, fixtureOpts{user: userRules})
	ed := f.ed
	c := ed.win.Canvas()
	shortcut(t, c, fyne.KeyN)
	if !ed.editing || ed.origID != "" {
		t.Fatal("Ctrl+N did not start a new rule")
	}
	if c.Focused() != ed.form.id {
		t.Fatalf("focus on %T, want the id field", c.Focused())
	}
	test.Type(c.Focused(), "kbd")
	test.FocusNext(c) // name
	test.Type(c.Focused(), "Keyboard app")
	ed.form.argv0.SetText("kbd")
	shortcut(t, c, fyne.KeyS)
	set, err := appdb.CheckFile(f.user)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := set.Lookup("kbd"); !ok || r.Name != "Keyboard app" {
		t.Errorf("saved by keyboard: %+v %v", r, ok)
	}

	// Ctrl+L, Down, Space opens the second rule of the list.
	shortcut(t, c, fyne.KeyL)
	if c.Focused() != ed.list {
		t.Fatalf("Ctrl+L: focus on %T, want the list", c.Focused())
	}
	ed.list.TypedKey(&fyne.KeyEvent{Name: fyne.KeyDown})
	ed.list.TypedKey(&fyne.KeyEvent{Name: fyne.KeySpace})
	if ed.origID != "panel" {
		t.Errorf("Down, Space opened %q, want panel", ed.origID)
	}
}

// shortcut presses Ctrl+key on the canvas.
func shortcut(t *testing.T, c fyne.Canvas, key fyne.KeyName) {
	t.Helper()
	type shortcutHandler interface{ TypedShortcut(fyne.Shortcut) }
	h, ok := c.(shortcutHandler)
	if !ok {
		t.Fatalf("canvas %T takes no shortcuts", c)
	}
	h.TypedShortcut(&desktop.CustomShortcut{KeyName: key, Modifier: fyne.KeyModifierShortcutDefault})
}

// TestBrokenUserFile: a user file that does not validate is not edited;
// the problems show, the system rules are still listed read-only.
func TestBrokenUserFile(t *testing.T) {
	f := newFixture(t, fixtureOpts{user: "[[app]]\nid = \"x\"\ngrase = \"2s\"\n", system: "[[app]]\nid = \"sys\"\nargv0 = \"s\"\n"})
	ed := f.ed
	if !ed.problemText.Visible() || !strings.Contains(ed.problemText.Text, `did you mean "grace"`) {
		t.Errorf("problems = %q (visible %v)", ed.problemText.Text, ed.problemText.Visible())
	}
	if len(ed.entries) != 1 || !ed.entries[0].System {
		t.Fatalf("entries = %+v, want the system rule only", ed.entries)
	}
	f.selectRule(t, "sys")
	if !ed.overrideBtn.Disabled() {
		t.Error("Override enabled on a user file that cannot be edited")
	}
	ed.newRule()
	ed.form.id.SetText("new")
	ed.form.argv0.SetText("new")
	if !ed.saveBtn.Disabled() {
		t.Error("Save enabled on a user file that cannot be edited")
	}

	// Fixed by hand, then Reload: editable again.
	writeRules(t, f.user, "[[app]]\nid = \"x\"\nargv0 = \"x\"\n")
	ed.reloadFromDisk()
	if ed.problemText.Visible() || ed.saveBtn.Disabled() {
		t.Errorf("after fixing: problems %q, Save disabled %v", ed.problemText.Text, ed.saveBtn.Disabled())
	}
}
