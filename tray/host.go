package tray

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// The item is visible only once a StatusNotifierWatcher (the panel's
// registry of items) took its registration. systray registers with the
// watcher there is, and again whenever one appears, but does not say
// whether that worked: after a bus restart it registers before any panel
// is back, and fails. So the tray follows the watcher itself, to log what
// is true.
//
// It does so on a connection of its own: godbus hands every signal of a
// connection to every channel that asked, and systray's loop on the shared
// connection stops re-registering for good at a signal it does not expect
// (one with fewer than three arguments, such as StatusNotifierItemRegistered).
//
// And it registers the item itself when a watcher goes without it for
// registerGrace: systray registers once at start, then subscribes to
// watcher changes, and a watcher that appears between the two (a panel
// started with the new bus, as after a bus restart) never gets the item,
// nor does a watcher that refused it. The icon would stay away until the
// next bus restart.

const (
	watcherName  = "org.kde.StatusNotifierWatcher"
	watcherPath  = dbus.ObjectPath("/StatusNotifierWatcher")
	watcherIface = "org.kde.StatusNotifierWatcher"
	busName      = "org.freedesktop.DBus"
)

// hostCallTimeout bounds each call to the bus or the watcher.
const hostCallTimeout = 5 * time.Second

// registerGrace is how long a watcher may go without the item before the
// tray registers it itself: systray registers within milliseconds of a
// watcher's appearance when it saw it, so the tray's own registration is
// for when it did not. Each further attempt waits twice as long, up to
// registerBackoffMax, so that a watcher that keeps refusing is not pressed.
const (
	registerGrace      = time.Second
	registerBackoffMax = time.Minute
)

// visibility is what the tray has logged of its item's visibility.
type visibility int

const (
	// unknown: nothing logged yet, or a new watcher has not taken the
	// item yet (systray registers with it in a moment).
	unknown visibility = iota
	// waiting: logged that no watcher is there.
	waiting
	// shown: logged that a watcher took the item.
	shown
)

// followHost follows the StatusNotifierWatcher on a connection of its own
// and sends what it finds to hosts, until ctx is done. Without that
// connection the tray runs on, only without these logs.
func (t *tray) followHost(ctx context.Context, hosts chan<- hostState) {
	conn, err := dbus.ConnectSessionBus(dbus.WithContext(ctx))
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("cannot follow the StatusNotifierWatcher", "err", err)
		}
		return
	}
	defer conn.Close()
	names := []string{t.conn.Names()[0], itemName()}
	err = followWatcher(ctx, conn, names, func(h hostState) {
		select {
		case hosts <- h:
		case <-ctx.Done():
		}
	}, func(ctx context.Context, watcher string) error {
		t.log.Info("the tray registers its item itself", "watcher", watcher,
			"why", "the StatusNotifierWatcher does not hold it, and systray registers only when a watcher appears")
		err := registerItem(ctx, t.conn, watcher)
		if err != nil && ctx.Err() == nil {
			t.log.Warn("the StatusNotifierWatcher refused the item", "watcher", watcher, "err", err)
		}
		return err
	}, registerGrace)
	// A lost bus ends the tray through systray's connection; anything
	// else is worth a word.
	if err != nil && ctx.Err() == nil && conn.Context().Err() == nil {
		t.log.Warn("stopped following the StatusNotifierWatcher", "err", err)
	}
}

// logHost logs what became of the item's visibility: "tray shown" once a
// watcher took it, and once that the tray waits while there is no
// watcher. A watcher that appeared but has not taken the item yet changes
// nothing (systray registers with it in a moment), except that a later
// registration is logged again.
func (t *tray) logHost(h hostState) {
	switch {
	case h.registered:
		if t.visible != shown {
			t.log.Info("tray shown", "state", t.shownState, "bus", t.conn.Names()[0], "watcher", h.watcher)
		}
		t.visible = shown
	case h.watcher == "":
		if t.visible != waiting {
			t.log.Info("tray waits for a StatusNotifierWatcher", "why", "no panel with a notification area is on the bus")
		}
		t.visible = waiting
	case t.visible == shown:
		// A new watcher: shown again once it takes the item.
		t.visible = unknown
	}
}

// hostState is what the tray knows of the watcher.
type hostState struct {
	// watcher is the unique name of the StatusNotifierWatcher; "" while
	// there is none.
	watcher string
	// registered: the watcher holds the tray's item.
	registered bool
}

// holdsItem reports whether one of items, entries of the watcher's
// RegisteredStatusNotifierItems or the argument of its
// StatusNotifierItemRegistered, is the tray's item: one of names (the
// item's connection, or its well-known name), alone or followed by the
// item's object path, as watchers write an item registered by path.
func holdsItem(items []string, names []string) bool {
	for _, it := range items {
		for _, n := range names {
			if n != "" && (it == n || strings.HasPrefix(it, n+"/")) {
				return true
			}
		}
	}
	return false
}

// registerItem registers the item systray exported on conn, its
// connection, with the watcher of unique name watcher, as systray does:
// by path, so that the watcher takes the caller's connection for the
// item's. Watchers keep one entry per connection and path, so this is
// harmless when systray registered too.
func registerItem(ctx context.Context, conn *dbus.Conn, watcher string) error {
	ctx, cancel := context.WithTimeout(ctx, hostCallTimeout)
	defer cancel()
	err := conn.Object(watcher, watcherPath).CallWithContext(ctx, watcherIface+".RegisterStatusNotifierItem", 0, itemPath).Err
	if err != nil {
		return fmt.Errorf("register with %s: %w", watcher, err)
	}
	return nil
}

// followWatcher reports through report, at once and at every change,
// whether a StatusNotifierWatcher holds the item named names, until ctx
// is done (nil) or conn, a connection of the tray's own, closes. Changes
// come from NameOwnerChanged of the watcher's name, the watcher's
// StatusNotifierItemRegistered and Unregistered, and its
// RegisteredStatusNotifierItems, read when a watcher appears and after
// each registration of the tray's own. When a watcher goes grace without
// the item, followWatcher calls register with the watcher's unique name,
// and again, twice as late each time, while the watcher still does not
// hold it.
func followWatcher(ctx context.Context, conn *dbus.Conn, names []string, report func(hostState),
	register func(ctx context.Context, watcher string) error, grace time.Duration) error {
	signals := make(chan *dbus.Signal, 16)
	conn.Signal(signals)
	defer conn.RemoveSignal(signals)
	// The matches come before the first look, so that no change between
	// them is missed.
	cctx, cancel := context.WithTimeout(ctx, hostCallTimeout)
	err := conn.AddMatchSignalContext(cctx, dbus.WithMatchSender(busName), dbus.WithMatchInterface(busName),
		dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, watcherName))
	if err == nil {
		err = conn.AddMatchSignalContext(cctx, dbus.WithMatchSender(watcherName), dbus.WithMatchInterface(watcherIface))
	}
	cancel()
	if err != nil {
		return fmt.Errorf("follow %s: %w", watcherName, err)
	}
	owner, err := nameOwner(ctx, conn, watcherName)
	if err != nil {
		return fmt.Errorf("follow %s: %w", watcherName, err)
	}
	st := hostState{watcher: owner}
	if owner != "" {
		st.registered = holdsItem(registeredItems(ctx, conn, owner), names)
	}
	report(st)
	// retry fires when the watcher st names has gone delay without the
	// item; it is stopped while there is no watcher or it holds the item.
	retry := time.NewTimer(grace)
	defer retry.Stop()
	delay := grace
	rearm := func() {
		if st.watcher == "" || st.registered {
			retry.Stop()
			return
		}
		retry.Reset(delay)
	}
	rearm()
	for {
		var sig *dbus.Signal
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case <-conn.Context().Done():
			return fmt.Errorf("follow %s: %w", watcherName, conn.Context().Err())
		case <-retry.C:
			// The error is register's to tell; the next attempt is
			// later, or at the next watcher.
			_ = register(ctx, st.watcher)
			if ctx.Err() != nil {
				return nil
			}
			// A watcher that took the item says so by signal too; the
			// property tells at once, and for one that does not signal.
			if holdsItem(registeredItems(ctx, conn, st.watcher), names) {
				st.registered = true
				report(st)
			}
			delay = min(2*delay, registerBackoffMax)
			rearm()
			continue
		case sig, ok = <-signals:
			if !ok {
				return fmt.Errorf("follow %s: connection closed", watcherName)
			}
		}
		next := st
		switch sig.Name {
		case busName + ".NameOwnerChanged":
			var name, old, owner string
			if dbus.Store(sig.Body, &name, &old, &owner) != nil || name != watcherName {
				continue
			}
			// A new watcher knows nothing of the item until systray,
			// which saw the same signal, registers with it.
			next = hostState{watcher: owner}
			if owner != "" {
				next.registered = holdsItem(registeredItems(ctx, conn, owner), names)
			}
		case watcherIface + ".StatusNotifierItemRegistered", watcherIface + ".StatusNotifierItemUnregistered":
			var item string
			if sig.Sender != st.watcher || dbus.Store(sig.Body, &item) != nil || !holdsItem([]string{item}, names) {
				continue
			}
			next.registered = sig.Name == watcherIface+".StatusNotifierItemRegistered"
		}
		if next != st {
			if next.watcher != st.watcher {
				// A new watcher gets the full grace again.
				delay = grace
			}
			st = next
			report(st)
			rearm()
		}
	}
}

// nameOwner returns the unique name that owns name, or "" if none does.
func nameOwner(ctx context.Context, conn *dbus.Conn, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, hostCallTimeout)
	defer cancel()
	var owner string
	err := conn.BusObject().CallWithContext(ctx, busName+".GetNameOwner", 0, name).Store(&owner)
	var derr dbus.Error
	if errors.As(err, &derr) && derr.Name == "org.freedesktop.DBus.Error.NameHasNoOwner" {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("owner of %s: %w", name, err)
	}
	return owner, nil
}

// registeredItems reads the RegisteredStatusNotifierItems of the watcher
// owner, or nil if it cannot be read: then the watcher's signals tell.
func registeredItems(ctx context.Context, conn *dbus.Conn, owner string) []string {
	ctx, cancel := context.WithTimeout(ctx, hostCallTimeout)
	defer cancel()
	var items []string
	err := conn.Object(owner, watcherPath).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0,
		watcherIface, "RegisteredStatusNotifierItems").Store(&items)
	if err != nil {
		return nil
	}
	return items
}
