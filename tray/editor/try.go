package editor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// requestClose closes the window, after asking about unsaved changes.
func (e *editor) requestClose() {
	e.guard(e.win.Close, nil)
}

// background runs fn on its own goroutine, bounded by the editor's
// lifetime, and hands its result to done on the event loop.
func background[T any](e *editor, fn func(ctx context.Context) (T, error), done func(T, error)) {
	e.wg.Go(func() {
		v, err := fn(e.ctx)
		if e.ctx.Err() != nil {
			return
		}
		e.post(func() { done(v, err) })
	})
}

// showTry shows the outcome of Show plan or Relaunch now under the buttons.
func (e *editor) showTry(text string, important widget.Importance) {
	e.tryText.Importance = important
	showLabel(e.tryText, text)
	e.tryText.Refresh()
}

// showPlan asks the daemon for a dry run on the rule's bus(es) and shows
// what it would do for this app.
func (e *editor) showPlan() {
	id, bus := e.origID, appdb.Bus(e.orig.Bus)
	if id == "" {
		return
	}
	var buses []string
	for _, b := range []appdb.Bus{appdb.BusSession, appdb.BusSystem} {
		if bus.Includes(b) {
			buses = append(buses, string(b))
		}
	}
	e.showTry("Asking busmedic…", widget.MediumImportance)
	background(e, func(ctx context.Context) (map[string][]control.PlannedJob, error) {
		plans := map[string][]control.PlannedJob{}
		err := e.link.call(ctx, requestTimeout, func(ctx context.Context, c *control.Client) error {
			for _, b := range buses {
				p, err := c.Plan(ctx, b)
				if err != nil {
					return err
				}
				plans[b] = p
			}
			return nil
		})
		return plans, err
	}, func(plans map[string][]control.PlannedJob, err error) {
		if err != nil {
			e.showTry("No plan: "+err.Error(), widget.DangerImportance)
			return
		}
		text := planText(id, plans)
		if e.dirty() {
			text += "\n(This is the saved rule: save your changes to plan with them.)"
		}
		e.showTry(text, widget.MediumImportance)
	})
}

// relaunchNow asks the daemon to recover the app now and shows the
// outcome. An app that is running is stopped and started again, which the
// daemon does only when told to (force): the user is asked first.
func (e *editor) relaunchNow() { e.relaunch(false) }

func (e *editor) relaunch(force bool) {
	id := e.origID
	if id == "" {
		return
	}
	e.relaunching = true
	e.relaunchBtn.Disable()
	e.showTry(fmt.Sprintf("Relaunching %s…", id), widget.MediumImportance)
	background(e, func(ctx context.Context) (control.Job, error) {
		var job control.Job
		err := e.link.call(ctx, relaunchTimeout, func(ctx context.Context, c *control.Client) error {
			var err error
			job, err = c.Relaunch(ctx, id, force)
			return err
		})
		return job, err
	}, func(job control.Job, err error) {
		e.relaunching = false
		e.updateButtons()
		switch {
		case errors.Is(err, control.ErrAppRunning):
			e.askRelaunch(id, err)
		case err != nil && job.Outcome == "":
			e.showTry(fmt.Sprintf("Relaunch of %s failed: %v", id, err), widget.DangerImportance)
		case job.Outcome == control.Failed || err != nil:
			e.showTry(fmt.Sprintf("%s: %s", id, jobText(job)), widget.DangerImportance)
		default:
			e.showTry(fmt.Sprintf("%s: %s", id, jobText(job)), widget.SuccessImportance)
		}
	})
}

// askRelaunch asks whether to stop the running app id and start it
// again, why being the daemon's refusal, which says where it runs.
func (e *editor) askRelaunch(id string, why error) {
	e.showTry("", widget.MediumImportance)
	e.relaunchAsk = dialog.NewConfirm("Relaunch "+id, why.Error()+".", func(ok bool) {
		if ok {
			e.relaunch(true)
			return
		}
		e.showTry(fmt.Sprintf("Not relaunched: %s keeps running.", id), widget.MediumImportance)
	}, e.win)
	e.relaunchAsk.SetConfirmText("Stop and relaunch")
	e.relaunchAsk.SetDismissText("Cancel")
	e.relaunchAsk.Show()
}

// loadHistory fetches the recent recoveries into the History tab.
func (e *editor) loadHistory() {
	if e.status == nil {
		e.historyNote.SetText("busmedic is not running: no history to show.")
		return
	}
	e.historyNote.SetText("Loading…")
	background(e, func(ctx context.Context) ([]control.Recovery, error) {
		var recs []control.Recovery
		err := e.link.call(ctx, requestTimeout, func(ctx context.Context, c *control.Client) error {
			var err error
			recs, err = c.History(ctx, 50)
			return err
		})
		return recs, err
	}, e.showHistory)
}

func (e *editor) showHistory(recs []control.Recovery, err error) {
	if err != nil {
		e.historyNote.SetText("No history: " + err.Error())
		return
	}
	entries := historyText(recs)
	if len(entries) == 0 {
		e.historyNote.SetText("No bus restart since busmedic started.")
	} else {
		e.historyNote.SetText(fmt.Sprintf("The last %d recoveries, newest first.", len(entries)))
	}
	var objs []fyne.CanvasObject
	for _, h := range entries {
		title := widget.NewLabel(h.Title)
		title.TextStyle.Bold = true
		objs = append(objs, title)
		for _, j := range h.Jobs {
			l := widget.NewLabel("    " + j)
			l.Wrapping = fyne.TextWrapWord
			if strings.Contains(j, string(control.Failed)) {
				l.Importance = widget.DangerImportance
			}
			objs = append(objs, l)
		}
		objs = append(objs, widget.NewSeparator())
	}
	e.historyBox.Objects = objs
	e.historyBox.Refresh()
}

// pickItem is one peer a picker offers.
type pickItem struct {
	bus  string
	peer watcher.Peer
	text string
}

// pickPeer lists the peers now on both buses and starts a rule for the
// one picked.
func (e *editor) pickPeer() {
	if e.status == nil {
		dialog.ShowInformation("Add from a running app", "busmedic is not running, so it cannot list the apps on the buses. Start it with: busmedic run", e.win)
		return
	}
	background(e, func(ctx context.Context) (map[string][]watcher.Peer, error) {
		var peers map[string][]watcher.Peer
		err := e.link.call(ctx, requestTimeout, func(ctx context.Context, c *control.Client) error {
			var err error
			peers, err = c.Peers(ctx)
			return err
		})
		return peers, err
	}, func(peers map[string][]watcher.Peer, err error) {
		if err != nil {
			dialog.ShowError(fmt.Errorf("list the apps on the buses: %w", err), e.win)
			return
		}
		var items []pickItem
		for _, bus := range []string{"session", "system"} {
			for _, p := range peers[bus] {
				if p.PID == 0 {
					continue
				}
				items = append(items, pickItem{bus: bus, peer: p, text: e.peerLabel(bus, p)})
			}
		}
		e.showPicker("Add from a running app", "Apps on the buses now: pick one to make a rule for it.", items)
	})
}

// peerLabel names a peer by its desktop file when one is known.
func (e *editor) peerLabel(bus string, p watcher.Peer) string {
	if info, ok := desktopFor(e.desktopFiles(), p.Exe); ok {
		return info.Name + " — " + peerText(bus, p)
	}
	return peerText(bus, p)
}

// pickCasualty offers the apps that fell off in the last restart and
// matched no rule.
func (e *editor) pickCasualty() {
	if e.status == nil {
		dialog.ShowInformation("Add from casualties", "busmedic is not running, so it knows of no casualties. Start it with: busmedic run", e.win)
		return
	}
	var items []pickItem
	for _, c := range e.status.Casualties {
		items = append(items, pickItem{bus: c.Bus, peer: c.Peer,
			text: fmt.Sprintf("%s  (fell off at %s)", e.peerLabel(c.Bus, c.Peer), c.At.Local().Format("15:04:05"))})
	}
	if len(items) == 0 {
		dialog.ShowInformation("Add from casualties", "No app fell off the bus without coming back: there is nothing to add.", e.win)
		return
	}
	e.showPicker("Add from casualties", "Apps that fell off in the last restart and did not come back:", items)
}

// showPicker shows items with a search box; the one picked fills a new
// rule. Enter in the search box picks the first match.
func (e *editor) showPicker(title, intro string, items []pickItem) {
	shown := items
	chosen := -1
	search := widget.NewEntry()
	search.SetPlaceHolder("Search: name, pid, command…")
	list := widget.NewList(
		func() int { return len(shown) },
		func() fyne.CanvasObject {
			l := widget.NewLabel("")
			l.Truncation = fyne.TextTruncateEllipsis
			return l
		},
		func(i widget.ListItemID, o fyne.CanvasObject) { o.(*widget.Label).SetText(shown[i].text) })
	list.OnSelected = func(i widget.ListItemID) { chosen = i }
	search.OnChanged = func(q string) {
		shown = nil
		for _, it := range items {
			if peerMatches(it.bus, it.peer, q) || strings.Contains(strings.ToLower(it.text), strings.ToLower(q)) {
				shown = append(shown, it)
			}
		}
		chosen = -1
		list.UnselectAll()
		list.Refresh()
	}
	var d *dialog.CustomDialog
	pick := func() {
		if chosen < 0 && len(shown) > 0 {
			chosen = 0
		}
		if chosen < 0 || chosen >= len(shown) {
			return
		}
		it := shown[chosen]
		d.Hide()
		e.AddFromPeer(it.bus, it.peer)
	}
	search.OnSubmitted = func(string) { pick() }
	add := widget.NewButton("Make a rule", pick)
	add.Importance = widget.HighImportance
	cancel := widget.NewButton("Cancel", func() { d.Hide() })
	content := container.NewBorder(container.NewVBox(widget.NewLabel(intro), search), nil, nil, nil, list)
	d = dialog.NewCustomWithoutButtons(title, content, e.win)
	d.SetButtons([]fyne.CanvasObject{cancel, add})
	d.Resize(fyne.NewSize(760, 480))
	d.Show()
	e.focus(search)
}
