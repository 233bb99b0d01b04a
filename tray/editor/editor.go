package editor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"busmedic/appdb"
	"busmedic/assets"
	"busmedic/icontheme"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// Options configure the editor that Run shows.
type Options struct {
	// Paths are the rules files; Paths.User is the one edited.
	Paths appdb.Paths
	// ControlPath is the daemon's control socket (control.DefaultPath()).
	ControlPath string
	// Logger gets what goes wrong outside the window; nil: slog.Default().
	Logger *slog.Logger
	// IconTheme is the icon theme the rules' icons are looked up in
	// (then in the themes it inherits, hicolor and pixmaps); "" means
	// hicolor. Run sets it to the desktop's (icontheme.CurrentTheme).
	IconTheme string

	// post runs fn on the window's event loop; nil means fyne.Do. Tests
	// queue the calls instead, to run them on the test's goroutine.
	post func(fn func())
}

// editor is the rules editor's window and its state. All its fields are
// owned by the Fyne event loop: goroutines hand results back through post.
type editor struct {
	win   fyne.Window
	log   *slog.Logger
	model *model
	link  daemonLink
	post  func(func())

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	entries  []entry
	editing  bool   // the form shows a rule
	origID   string // the id of the edited rule in the user file; "" for a new rule
	readOnly bool   // the form shows a system rule
	cur      draft
	orig     draft
	errs     problems
	loading  bool // the form is being filled: ignore its change callbacks

	status    *control.Status // nil while the daemon is not running
	daemonErr error
	// relaunching: a relaunch asked for here runs; its button stays off
	// until the daemon answers, whatever statuses come meanwhile.
	relaunching bool
	desktops    map[string]desktopInfo
	iconTheme   *icontheme.Finder
	icons       map[string]fyne.Resource

	// Offers of rules for catalog apps on the session bus (offers.go).
	catalog     []assets.CatalogApp
	offerBox    *fyne.Container
	offerRows   []offerRow
	notNow      map[string]bool // app ids put off for this session
	offersBusy  bool            // a refresh is asking the daemon
	offersAgain bool            // and another was asked for meanwhile

	daemonBanner *fyne.Container
	daemonText   *widget.Label
	fileBanner   *fyne.Container
	fileText     *widget.Label
	problemText  *widget.Label

	list        *widget.List
	form        *ruleForm
	formTitle   *widget.Label
	formBox     *fyne.Container
	placeholder fyne.CanvasObject
	saveBtn     *widget.Button
	revertBtn   *widget.Button
	deleteBtn   *widget.Button
	overrideBtn *widget.Button
	planBtn     *widget.Button
	relaunchBtn *widget.Button
	tryText     *widget.Label
	// relaunchAsk is the question before a running app is relaunched.
	relaunchAsk *dialog.ConfirmDialog

	tabs        *container.AppTabs
	historyBox  *fyne.Container
	historyNote *widget.Label
}

// newEditor builds the editor in a new window of app and starts following the
// daemon and the rules file until the window closes or ctx is done. Show
// the window with Window().Show().
func newEditor(ctx context.Context, app fyne.App, opts Options) *editor {
	e := &editor{
		log:      opts.Logger,
		model:    newModel(opts.Paths),
		post:     opts.post,
		desktops: nil,
		// Fyne draws PNG and SVG, not XPM.
		iconTheme: icontheme.New(opts.IconTheme, icontheme.BaseDirs(), []string{".png", ".svg"}),
		icons:     map[string]fyne.Resource{},
		notNow:    map[string]bool{},
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	var err error
	if e.catalog, err = assets.Catalog(); err != nil {
		e.log.Warn("no rule offers: the catalog does not load", "err", err)
	}
	if e.post == nil {
		e.post = fyne.Do
	}
	e.link = daemonLink{client: control.NewClient(opts.ControlPath), log: e.log}
	e.ctx, e.cancel = context.WithCancel(ctx)
	e.win = app.NewWindow("busmedic rules")
	e.build()
	e.win.Resize(fyne.NewSize(1000, 700))
	e.win.SetCloseIntercept(e.requestClose)
	e.win.SetOnClosed(e.stop)
	e.refreshList()
	e.showFileProblems()

	e.wg.Go(func() {
		e.link.follow(e.ctx, func(st *control.Status, err error) {
			e.post(func() { e.setStatus(st, err) })
		})
	})
	e.wg.Go(func() {
		err := watchFile(e.ctx, e.model.Path(), e.log, func() {
			e.post(e.fileChanged)
		})
		if err != nil {
			e.log.Warn("not watching the rules file for changes", "err", err)
		}
	})
	return e
}

// Window returns the editor's window.
func (e *editor) Window() fyne.Window { return e.win }

// stop ends the goroutines; it runs when the window closes.
func (e *editor) stop() {
	e.cancel()
	e.wg.Wait()
	e.link.client.Close()
}

func (e *editor) build() {
	e.daemonText = widget.NewLabel("")
	e.daemonText.Wrapping = fyne.TextWrapWord
	e.daemonBanner = container.NewBorder(nil, nil, widget.NewIcon(theme.InfoIcon()), nil, e.daemonText)
	e.daemonBanner.Hide()

	e.fileText = widget.NewLabel("")
	e.fileText.Wrapping = fyne.TextWrapWord
	e.fileText.Importance = widget.WarningImportance
	reload := widget.NewButtonWithIcon("Reload", theme.ViewRefreshIcon(), e.reloadFromDisk)
	e.fileBanner = container.NewBorder(nil, nil, widget.NewIcon(theme.WarningIcon()), reload, e.fileText)
	e.fileBanner.Hide()

	e.problemText = widget.NewLabel("")
	e.problemText.Wrapping = fyne.TextWrapWord
	e.problemText.Importance = widget.DangerImportance
	e.problemText.Hide()

	e.list = widget.NewList(
		func() int { return len(e.entries) },
		func() fyne.CanvasObject {
			name := widget.NewLabel("name")
			name.TextStyle.Bold = true
			detail := widget.NewLabel("action")
			state := widget.NewLabel("state")
			state.TextStyle.Italic = true
			state.Truncation = fyne.TextTruncateEllipsis
			detail.Truncation = fyne.TextTruncateEllipsis
			icon := widget.NewIcon(theme.ComputerIcon())
			return container.NewBorder(nil, nil, icon, nil, container.NewVBox(name, detail, state))
		},
		func(id widget.ListItemID, o fyne.CanvasObject) {
			if id >= len(e.entries) {
				return
			}
			e.fillRow(e.entries[id], o.(*fyne.Container))
		})
	e.list.OnSelected = e.selectEntry

	add := widget.NewButtonWithIcon("New", theme.ContentAddIcon(), e.newRule)
	fromPeer := widget.NewButtonWithIcon("From a running app…", theme.SearchIcon(), e.pickPeer)
	fromCasualty := widget.NewButtonWithIcon("From casualties…", theme.HistoryIcon(), e.pickCasualty)
	e.offerBox = container.NewVBox()
	left := container.NewBorder(e.offerBox, container.NewVBox(add, fromPeer, fromCasualty), nil, nil, e.list)

	e.formTitle = widget.NewLabel("")
	e.formTitle.TextStyle.Bold = true
	e.formTitle.Wrapping = fyne.TextWrapWord
	e.form = newRuleForm(e.focus, e.edited)
	e.saveBtn = widget.NewButtonWithIcon("Save", theme.DocumentSaveIcon(), e.save)
	e.saveBtn.Importance = widget.HighImportance
	e.revertBtn = widget.NewButtonWithIcon("Revert", theme.ContentUndoIcon(), e.revert)
	e.deleteBtn = widget.NewButtonWithIcon("Delete", theme.DeleteIcon(), e.confirmDelete)
	e.overrideBtn = widget.NewButtonWithIcon("Override", theme.ContentCopyIcon(), e.override)
	e.planBtn = widget.NewButtonWithIcon("Show plan", theme.InfoIcon(), e.showPlan)
	e.relaunchBtn = widget.NewButtonWithIcon("Relaunch now", theme.MediaReplayIcon(), e.relaunchNow)
	e.tryText = widget.NewLabel("")
	e.tryText.Wrapping = fyne.TextWrapWord
	e.tryText.Hide()
	buttons := container.NewHBox(e.saveBtn, e.revertBtn, e.deleteBtn, e.overrideBtn, widget.NewSeparator(), e.planBtn, e.relaunchBtn)
	e.formBox = container.NewBorder(container.NewVBox(e.formTitle, buttons, e.tryText), nil, nil, nil,
		container.NewVScroll(e.form.content))
	e.placeholder = container.NewCenter(widget.NewLabel("Pick a rule on the left, or add one."))
	right := container.NewStack(e.placeholder, e.formBox)
	e.formBox.Hide()

	split := container.NewHSplit(left, right)
	split.Offset = 0.32

	e.historyNote = widget.NewLabel("")
	e.historyNote.Wrapping = fyne.TextWrapWord
	e.historyBox = container.NewVBox()
	refresh := widget.NewButtonWithIcon("Refresh", theme.ViewRefreshIcon(), e.loadHistory)
	history := container.NewBorder(container.NewVBox(container.NewHBox(refresh), e.historyNote), nil, nil, nil,
		container.NewVScroll(e.historyBox))

	e.tabs = container.NewAppTabs(
		container.NewTabItemWithIcon("Rules", theme.ListIcon(), split),
		container.NewTabItemWithIcon("History", theme.HistoryIcon(), history),
	)
	e.tabs.OnSelected = func(t *container.TabItem) {
		if t.Text == "History" {
			e.loadHistory()
		}
	}
	e.win.SetContent(container.NewBorder(container.NewVBox(e.daemonBanner, e.fileBanner, e.problemText), nil, nil, nil, e.tabs))

	// Keyboard: Tab moves between fields (Fyne's focus order); these
	// shortcuts reach the commands without the mouse.
	short := func(key fyne.KeyName, fn func()) {
		e.win.Canvas().AddShortcut(&desktop.CustomShortcut{KeyName: key, Modifier: fyne.KeyModifierShortcutDefault},
			func(fyne.Shortcut) { fn() })
	}
	short(fyne.KeyS, func() {
		if !e.saveBtn.Disabled() {
			e.save()
		}
	})
	short(fyne.KeyN, e.newRule)
	short(fyne.KeyP, e.pickPeer)
	short(fyne.KeyW, e.requestClose)
	short(fyne.KeyQ, e.requestClose)
	short(fyne.KeyL, func() { e.focus(e.list) })
	short(fyne.KeyH, func() { e.tabs.SelectIndex(1) })
	short(fyne.KeyR, func() { e.tabs.SelectIndex(0) })
	e.updateButtons()
}

func (e *editor) focus(f fyne.Focusable) { e.win.Canvas().Focus(f) }

// fillRow shows one entry in the list.
func (e *editor) fillRow(en entry, row *fyne.Container) {
	r := en.Rule
	vbox := row.Objects[0].(*fyne.Container)
	icon := row.Objects[1].(*widget.Icon)
	name, detail, state := vbox.Objects[0].(*widget.Label), vbox.Objects[1].(*widget.Label), vbox.Objects[2].(*widget.Label)
	name.SetText(r.DisplayName())
	d := string(r.Action)
	if !r.Enabled {
		d = "disabled"
	}
	d += " · " + string(r.Bus) + " bus"
	if en.System {
		d += " · system (read-only)"
	}
	detail.SetText(d)
	st := ""
	if e.status != nil {
		for i := range e.status.Apps {
			if e.status.Apps[i].ID == r.ID {
				st = stateText(&e.status.Apps[i])
			}
		}
	}
	state.SetText(st)
	icon.SetResource(e.iconFor(r))
}

// rowIconSize is the size, in pixels, a row's icon is looked up at: the
// row shows it smaller, and a 48 px icon stays sharp at scale 2.
const rowIconSize = 48

// iconFor finds a rule's icon, its icon key or else its desktop file's,
// in the icon theme; Fyne's generic icon if there is none.
func (e *editor) iconFor(r appdb.Rule) fyne.Resource {
	name := r.Icon
	if name == "" && r.Desktop != "" {
		if info, ok := e.desktopFiles()[r.Desktop]; ok {
			name = info.Icon
		}
	}
	if res, ok := e.icons[name]; ok {
		return res
	}
	var res fyne.Resource = theme.ComputerIcon()
	if p := e.iconTheme.Find(name, rowIconSize, 1); p != "" {
		if loaded, err := fyne.LoadResourceFromPath(p); err == nil {
			res = loaded
		}
	}
	e.icons[name] = res
	return res
}

func (e *editor) desktopFiles() map[string]desktopInfo {
	if e.desktops == nil {
		e.desktops = desktopFiles()
	}
	return e.desktops
}

// refreshList reloads the entries from the model and keeps the selection
// on the rule being edited.
func (e *editor) refreshList() {
	e.entries = e.model.Entries()
	e.list.Refresh()
	e.list.UnselectAll()
	if e.editing && e.origID != "" {
		for i, en := range e.entries {
			if en.Rule.ID == e.origID && en.System == e.readOnly {
				e.selectQuietly(i)
			}
		}
	}
}

// selectQuietly marks row i selected without reloading the form.
func (e *editor) selectQuietly(i int) {
	onSel := e.list.OnSelected
	e.list.OnSelected = nil
	e.list.Select(i)
	e.list.OnSelected = onSel
}

// dirty reports whether the form holds changes not saved.
func (e *editor) dirty() bool {
	if !e.editing || e.readOnly {
		return false
	}
	return e.origID == "" || !e.cur.Equal(e.orig)
}

// guard runs next once unsaved changes, if any, are saved or discarded by
// the user's choice; cancel runs if the user keeps editing.
func (e *editor) guard(next, cancel func()) {
	if !e.dirty() {
		next()
		return
	}
	name := e.cur.ID
	if name == "" {
		name = "the new rule"
	}
	d := dialog.NewConfirm("Unsaved changes",
		fmt.Sprintf("Discard your changes to %s?", name),
		func(discard bool) {
			if discard {
				next()
			} else if cancel != nil {
				cancel()
			}
		}, e.win)
	d.SetConfirmText("Discard")
	d.SetDismissText("Keep editing")
	d.Show()
}

func (e *editor) selectEntry(id widget.ListItemID) {
	if id < 0 || id >= len(e.entries) {
		return
	}
	en := e.entries[id]
	if e.editing && en.Rule.ID == e.origID && en.System == e.readOnly {
		return
	}
	prev := e.selectedIndex()
	e.guard(func() {
		e.edit(draftOf(en.Rule), en.Rule.ID, en.System)
	}, func() {
		if prev >= 0 {
			e.selectQuietly(prev)
		} else {
			e.list.UnselectAll()
		}
	})
}

func (e *editor) selectedIndex() int {
	for i, en := range e.entries {
		if e.editing && en.Rule.ID == e.origID && en.System == e.readOnly && e.origID != "" {
			return i
		}
	}
	return -1
}

// edit shows d in the form. origID is the rule's id in the user file (""
// for a rule not saved yet); system rules are read-only.
func (e *editor) edit(d draft, origID string, system bool) {
	e.editing, e.origID, e.readOnly = true, origID, system
	e.cur, e.orig = d, d
	e.loading = true
	e.form.set(d)
	e.loading = false
	e.form.setReadOnly(system)
	e.tryText.Hide()
	e.placeholder.Hide()
	e.formBox.Show()
	e.revalidate()
	if !system {
		e.focus(e.form.id)
	}
	if origID == "" {
		e.list.UnselectAll()
	}
}

// edited is the form's change callback.
func (e *editor) edited(change func(*draft)) {
	if e.loading || !e.editing {
		return
	}
	change(&e.cur)
	e.revalidate()
}

// revalidate checks the draft with appdb and shows the problems at their
// fields; Save is enabled only without errors.
func (e *editor) revalidate() {
	var taken []string
	for _, id := range e.model.UserIDs() {
		if id != e.origID {
			taken = append(taken, id)
		}
	}
	_, errs, warns := e.cur.Check(taken)
	if e.readOnly {
		errs, warns = problems{}, problems{}
	}
	e.errs = errs
	e.form.showProblems(errs, warns)
	e.updateButtons()
}

func (e *editor) updateButtons() {
	title := ""
	switch {
	case !e.editing:
	case e.readOnly:
		title = fmt.Sprintf("%s — system rule from %s (read-only: Override copies it into your file)", e.cur.ID, tildePath(e.sourceOf(e.origID)))
	case e.origID == "":
		title = "New rule (not saved yet) — " + tildePath(e.model.Path())
	default:
		title = fmt.Sprintf("%s — %s", e.origID, tildePath(e.model.Path()))
	}
	if e.dirty() {
		title += " — unsaved changes"
	}
	e.formTitle.SetText(title)
	editable := e.editing && !e.readOnly && e.model.FileErr() == nil
	setEnabled(e.saveBtn, editable && len(e.errs) == 0 && e.dirty())
	setEnabled(e.revertBtn, editable && e.dirty())
	setEnabled(e.deleteBtn, editable && e.origID != "")
	if e.readOnly {
		e.overrideBtn.Show()
	} else {
		e.overrideBtn.Hide()
	}
	setEnabled(e.overrideBtn, e.editing && e.readOnly && e.model.FileErr() == nil)
	saved := e.editing && e.origID != ""
	setEnabled(e.planBtn, saved && e.status != nil)
	setEnabled(e.relaunchBtn, saved && e.status != nil && !e.relaunching)
}

func (e *editor) sourceOf(id string) string {
	for _, en := range e.entries {
		if en.Rule.ID == id && en.System {
			return en.Rule.Source
		}
	}
	return "a system file"
}

func (e *editor) newRule() {
	e.guard(func() {
		d := draftOf(appdb.NewRule(""))
		e.edit(d, "", false)
	}, nil)
}

// override copies the system rule in the form into a new user rule with
// the same id, which then replaces it.
func (e *editor) override() {
	if !e.readOnly {
		return
	}
	d := e.cur
	e.edit(d, "", false)
	e.formTitle.SetText("Override of the system rule " + d.ID + " (not saved yet) — " + e.model.Path())
}

// AddFromPeer starts a new rule for a running app, as appdb.FromPeer
// suggests, with its desktop file's name and icon when one is known.
func (e *editor) AddFromPeer(bus string, p watcher.Peer) {
	r := appdb.FromPeer(p)
	if b := appdb.Bus(bus); b == appdb.BusSession || b == appdb.BusSystem {
		r.Bus = b
	}
	if info, ok := desktopFor(e.desktopFiles(), p.Exe); ok {
		r.Name = info.Name
	}
	e.addRule(r, p)
}

// addRule shows r, made for the running app p, in the form as a new rule
// with p's desktop file's icon when one is known. Nothing is written until
// the user saves it.
func (e *editor) addRule(r appdb.Rule, p watcher.Peer) {
	if info, ok := desktopFor(e.desktopFiles(), p.Exe); ok {
		r.Icon, r.Desktop = info.Icon, info.ID
	}
	// An id the file already has would replace that rule: pick another.
	ids := e.model.UserIDs()
	base := r.ID
	for i := 2; slices.Contains(ids, r.ID); i++ {
		r.ID = fmt.Sprintf("%s-%d", base, i)
	}
	e.guard(func() { e.edit(draftOf(r), "", false) }, nil)
}

func (e *editor) save() {
	if e.readOnly || !e.editing {
		return
	}
	r, errs, _ := e.cur.Check(nil)
	if len(errs) > 0 || len(e.errs) > 0 {
		return
	}
	err := e.model.Save(e.origID, r)
	if err != nil {
		e.showSaveError(err)
		return
	}
	e.log.Info("saved rule", "app", r.ID, "file", e.model.Path())
	e.origID = r.ID
	e.orig = e.cur
	e.refreshList()
	e.revalidate()
	e.askReload()
	e.refreshOffers()
}

func (e *editor) showSaveError(err error) {
	if errors.Is(err, appdb.ErrConflict) {
		e.fileText.SetText(fmt.Sprintf("%s changed on disk since it was read, so it was not saved. "+
			"Reload it (the form keeps your changes), then save again.", e.model.Path()))
		e.fileBanner.Show()
		return
	}
	dialog.ShowError(fmt.Errorf("not saved: %w", err), e.win)
}

// askReload makes the daemon take the saved rules at once (it would
// within a moment anyway, watching the file).
func (e *editor) askReload() {
	if e.status == nil {
		return
	}
	e.wg.Go(func() {
		err := e.link.call(e.ctx, requestTimeout, func(ctx context.Context, c *control.Client) error { return c.Reload(ctx) })
		if err != nil && e.ctx.Err() == nil {
			e.log.Warn("asking the daemon to reload the rules", "err", err)
		}
	})
}

func (e *editor) revert() {
	if !e.editing || e.readOnly {
		return
	}
	if e.origID == "" {
		e.editing = false
		e.formBox.Hide()
		e.placeholder.Show()
		e.updateButtons()
		return
	}
	e.edit(e.orig, e.origID, false)
}

func (e *editor) confirmDelete() {
	id := e.origID
	if id == "" || e.readOnly {
		return
	}
	dialog.ShowConfirm("Delete rule", fmt.Sprintf("Delete the rule %q from %s?", id, e.model.Path()), func(ok bool) {
		if !ok {
			return
		}
		if err := e.model.Delete(id); err != nil {
			e.showSaveError(err)
			return
		}
		e.editing = false
		e.formBox.Hide()
		e.placeholder.Show()
		e.refreshList()
		e.updateButtons()
		e.askReload()
		e.refreshOffers()
	}, e.win)
}

// fileChanged runs when the user file changed on disk.
func (e *editor) fileChanged() {
	if !e.model.ChangedOnDisk() {
		return // our own save
	}
	e.fileText.SetText(fmt.Sprintf("%s was changed by another program.", e.model.Path()) +
		map[bool]string{true: " Reload it (the form keeps your unsaved changes).", false: " Reload it to see the change."}[e.dirty()])
	e.fileBanner.Show()
}

// reloadFromDisk reads the files again; the form keeps a draft being
// edited so that it can be saved onto the new file.
func (e *editor) reloadFromDisk() {
	e.model.Reload()
	e.fileBanner.Hide()
	e.showFileProblems()
	switch {
	case !e.editing:
	case e.dirty():
		// Keep the draft; it is saved onto the reloaded file.
	case e.origID != "":
		found := false
		for _, en := range e.model.Entries() {
			if en.Rule.ID == e.origID && en.System == e.readOnly {
				e.edit(draftOf(en.Rule), en.Rule.ID, en.System)
				found = true
			}
		}
		if !found {
			e.editing = false
			e.formBox.Hide()
			e.placeholder.Show()
		}
	}
	e.refreshList()
	e.revalidate()
	e.refreshOffers()
}

func (e *editor) showFileProblems() {
	var msgs []string
	if err := e.model.FileErr(); err != nil {
		msgs = append(msgs, fmt.Sprintf("Your rules file cannot be edited until these are fixed (in a text editor; then Reload):\n%v", err))
	}
	if err := e.model.SystemErr(); err != nil {
		msgs = append(msgs, fmt.Sprintf("A system rules file does not load:\n%v", err))
	}
	showLabel(e.problemText, strings.Join(msgs, "\n"))
}

// setStatus takes a status from the daemon, or nil with why there is none.
func (e *editor) setStatus(st *control.Status, err error) {
	newRecovery := st != nil && st.LastRecovery != nil &&
		(e.status == nil || e.status.LastRecovery == nil || !recoveryEqual(*e.status.LastRecovery, *st.LastRecovery))
	e.status, e.daemonErr = st, err
	if newRecovery && e.tabs.Selected() != nil && e.tabs.SelectedIndex() == 1 {
		e.loadHistory()
	}
	if st == nil {
		msg := "busmedic is not running: you can edit and save rules, but not try them (plan, relaunch, history, running apps). Start it with: busmedic run"
		if err != nil && !notRunning(err) {
			msg = fmt.Sprintf("Cannot reach busmedic (%v): editing only.", err)
		}
		e.daemonText.SetText(msg)
		e.daemonBanner.Show()
	} else if st.RulesError != "" {
		e.daemonText.SetText("busmedic keeps its last good rules: the files on disk have errors: " + st.RulesError)
		e.daemonBanner.Show()
	} else {
		e.daemonBanner.Hide()
	}
	e.list.Refresh()
	e.updateButtons()
	e.refreshOffers()
}

// recoveryEqual tells whether two snapshots are of the same recovery in
// the same state, so that History reloads only when one starts or ends.
func recoveryEqual(a, b control.Recovery) bool {
	return a.Bus == b.Bus && a.ID == b.ID && a.Started.Equal(b.Started) && a.Ended.Equal(b.Ended) && len(a.Jobs) == len(b.Jobs)
}

// tildePath writes a path under the home directory as ~/..., as people
// read it.
func tildePath(p string) string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" || home == "/" {
		return p
	}
	if rest, ok := strings.CutPrefix(p, home+"/"); ok {
		return "~/" + rest
	}
	return p
}
