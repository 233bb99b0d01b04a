package tray

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"

	"fyne.io/systray"
)

// entry is one systray menu item and what it shows now, so that applying a
// view only touches what changed: every systray setter sends D-Bus signals.
type entry struct {
	item  *systray.MenuItem
	shown line
	fresh bool // never applied
}

func newEntry(item *systray.MenuItem) *entry { return &entry{item: item, fresh: true} }

func (e *entry) set(l line) {
	it, old := e.item, e.shown
	if e.fresh || l.Title != old.Title {
		it.SetTitle(l.Title)
	}
	if e.fresh || l.Tooltip != old.Tooltip {
		it.SetTooltip(l.Tooltip)
	}
	if e.fresh || l.Enabled != old.Enabled {
		if l.Enabled {
			it.Enable()
		} else {
			it.Disable()
		}
	}
	if e.fresh || l.Checked != old.Checked {
		if l.Checked {
			it.Check()
		} else {
			it.Uncheck()
		}
	}
	if e.fresh || l.Visible != old.Visible {
		if l.Visible {
			it.Show()
		} else {
			it.Hide()
		}
	}
	e.shown, e.fresh = l, false
}

// casualtyEntry is one casualty's submenu.
type casualtyEntry struct {
	*entry
	relaunch, learn *entry
}

// menu is the tray's menu: fixed items, and pools for the lists.
type menu struct {
	session, system *entry
	apps            *entry
	appItems        []*entry
	appRelaunch     []*entry // each app item's submenu: its relaunch
	appsNote        *entry
	kept            []*entry
	keptNote        *entry
	fell            *entry
	casualties      []casualtyEntry
	fellNote        *entry
	// restartBus and restartSystem are submenus: their restart is the
	// item in them, restartNow and restartSystemNow; restartNote, beside
	// restartNow, says why the session bus cannot be restarted.
	restartBus, restartNow, restartNote *entry
	restartSystem, restartSystemNow     *entry
	editRules                           *entry
	history                             *entry
	pause                               *entry
	quit                                *systray.MenuItem

	// ids maps pool items to what they stand for now, for the click
	// handlers, which run on other goroutines than apply.
	mu     sync.Mutex
	appIDs []string
	casIDs []string
	paused bool
}

// newMenu creates every item once, in menu order. It must run before
// systray registers, so panels see the whole menu in the first layout.
func newMenu() *menu {
	m := &menu{}
	m.session = newEntry(systray.AddMenuItem("Session bus", ""))
	m.system = newEntry(systray.AddMenuItem("System bus", ""))
	systray.AddSeparator()
	m.apps = newEntry(systray.AddMenuItem("Apps", ""))
	for range maxApps {
		app := m.apps.item.AddSubMenuItem("", "")
		m.appItems = append(m.appItems, newEntry(app))
		m.appRelaunch = append(m.appRelaunch, newEntry(app.AddSubMenuItem("Relaunch now", "")))
	}
	m.appsNote = newEntry(m.apps.item.AddSubMenuItem("", ""))
	for range maxKept {
		m.kept = append(m.kept, newEntry(m.apps.item.AddSubMenuItem("", "")))
	}
	m.keptNote = newEntry(m.apps.item.AddSubMenuItem("", ""))
	m.fell = newEntry(systray.AddMenuItem("Fell off the bus", ""))
	for range maxCasualties {
		c := m.fell.item.AddSubMenuItem("", "")
		m.casualties = append(m.casualties, casualtyEntry{
			entry:    newEntry(c),
			relaunch: newEntry(c.AddSubMenuItem("Relaunch", "")),
			learn:    newEntry(c.AddSubMenuItem("Always relaunch", "")),
		})
	}
	m.fellNote = newEntry(m.fell.item.AddSubMenuItem("", ""))
	systray.AddSeparator()
	m.restartBus = newEntry(systray.AddMenuItem("Restart session bus", ""))
	m.restartNow = newEntry(m.restartBus.item.AddSubMenuItem("Restart now", ""))
	m.restartNote = newEntry(m.restartBus.item.AddSubMenuItem("", ""))
	m.restartSystem = newEntry(systray.AddMenuItem("Restart system bus", ""))
	m.restartSystemNow = newEntry(m.restartSystem.item.AddSubMenuItem("Restart now", ""))
	m.editRules = newEntry(systray.AddMenuItem("Edit rules…", ""))
	m.history = newEntry(systray.AddMenuItem("Recovery history…", ""))
	m.pause = newEntry(systray.AddMenuItemCheckbox("Pause automatic recovery", "", false))
	systray.AddSeparator()
	m.quit = systray.AddMenuItem("Quit", "Stop busmedic: no app is recovered after a bus restart until it starts again (at the next login)")
	return m
}

// apply makes the menu show v.
func (m *menu) apply(v view) {
	m.session.set(v.Session)
	m.system.set(v.System)
	m.apps.set(v.Apps)
	m.mu.Lock()
	prevApps, prevCas := m.appIDs, m.casIDs
	m.mu.Unlock()
	ids := make([]string, len(m.appItems))
	for s, i := range place(prevApps, lineIDs(v.AppItems), len(m.appItems)) {
		if i >= 0 {
			m.appItems[s].set(v.AppItems[i])
			m.appRelaunch[s].set(v.AppRelaunch[i])
			ids[s] = v.AppItems[i].ID
		} else {
			m.appItems[s].set(line{})
		}
	}
	m.appsNote.set(v.AppsNote)
	for i, e := range m.kept {
		if i < len(v.Kept) {
			e.set(v.Kept[i])
		} else {
			e.set(line{})
		}
	}
	m.keptNote.set(v.KeptNote)
	m.fell.set(v.Fell)
	cas := make([]string, len(m.casualties))
	for s, i := range place(prevCas, lineIDs(v.Casualties), len(m.casualties)) {
		c := m.casualties[s]
		if i >= 0 {
			l := v.Casualties[i]
			c.set(l)
			c.relaunch.set(line{Title: "Relaunch", Tooltip: "Start it again, once", Enabled: l.Enabled, Visible: true})
			c.learn.set(line{Title: "Always relaunch", Tooltip: "Make a rule: relaunch it after every restart", Enabled: l.Enabled, Visible: true})
			cas[s] = l.ID
		} else {
			c.set(line{})
		}
	}
	m.fellNote.set(v.FellNote)
	m.restartBus.set(v.RestartBus)
	m.restartNow.set(v.RestartNow)
	m.restartNote.set(v.RestartNote)
	m.restartSystem.set(v.RestartSystem)
	m.restartSystemNow.set(v.RestartSystemNow)
	m.editRules.set(v.EditRules)
	m.history.set(v.History)
	m.pause.set(v.Pause)

	m.mu.Lock()
	m.appIDs, m.casIDs, m.paused = ids, cas, v.Pause.Checked
	m.mu.Unlock()
}

// place says which of the items ids each of n pool slots shows (its index
// in ids, or -1 for none), given what the slots showed before (prev). An
// item keeps the slot it had while it stays listed, so that a click acts
// on what the clicked item showed even if the list changed between the
// panel's drawing of the menu and the click: with positions, a casualty
// relaunched by hand would have moved the others up, and "Relaunch" on
// the next one down would have acted on the one below it. A new item
// takes a slot that was empty before rather than one just left, for the
// same reason. The slots are shown in their order, so an item listed
// later may show above one listed earlier.
func place(prev, ids []string, n int) []int {
	slots := make([]int, n)
	for s := range slots {
		slots[s] = -1
	}
	had := map[string]int{}
	for s, id := range prev {
		if id != "" && s < n {
			had[id] = s
		}
	}
	var unplaced []int
	for i, id := range ids[:min(len(ids), n)] {
		if s, ok := had[id]; ok {
			slots[s] = i
			delete(had, id) // an id listed twice gets a second slot
		} else {
			unplaced = append(unplaced, i)
		}
	}
	wasEmpty := func(s int) bool { return s >= len(prev) || prev[s] == "" }
	var free []int
	for _, empty := range []bool{true, false} {
		for s := range slots {
			if slots[s] == -1 && wasEmpty(s) == empty {
				free = append(free, s)
			}
		}
	}
	for k, i := range unplaced {
		slots[free[k]] = i
	}
	return slots
}

// lineIDs returns the ids of lines.
func lineIDs(lines []line) []string {
	ids := make([]string, len(lines))
	for i, l := range lines {
		ids[i] = l.ID
	}
	return ids
}

// appID returns the app pool item i stands for now, or "".
func (m *menu) appID(i int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.appIDs[i]
}

func (m *menu) casualtyID(i int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.casIDs[i]
}

func (m *menu) isPaused() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.paused
}

// clicks dispatches menu clicks. One goroutine selects over every item's
// channel, rather than one goroutine per item: the pools hold about sixty
// items, and each idle goroutine's stack is memory the tray keeps for
// nothing. Each click's action runs on a goroutine of its own, so a slow
// relaunch does not hold up the other items; a click on an item whose
// last action still runs is dropped, as a double click on "Relaunch"
// should be.
type clicks struct {
	cases []reflect.SelectCase
	fns   []func(context.Context)
	busy  []atomic.Bool
}

// on makes fn the action of item.
func (c *clicks) on(item *systray.MenuItem, fn func(context.Context)) {
	c.cases = append(c.cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(item.ClickedCh)})
	c.fns = append(c.fns, fn)
}

// run dispatches clicks until ctx is done; wg tracks the actions.
func (c *clicks) run(ctx context.Context, wg *sync.WaitGroup) {
	c.busy = make([]atomic.Bool, len(c.fns))
	cases := append([]reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}, c.cases...)
	for {
		i, _, _ := reflect.Select(cases)
		if i == 0 {
			return
		}
		i--
		if !c.busy[i].CompareAndSwap(false, true) {
			continue
		}
		wg.Go(func() {
			defer c.busy[i].Store(false)
			c.fns[i](ctx)
		})
	}
}
