package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/appdb"
	"busmedic/assets"
	"busmedic/relaunch"
	"busmedic/watcher"
)

// Actions of the first-run offer, as key and label pairs for the
// notification server.
const (
	offerAdd    = "add"
	offerNotNow = "not-now"
)

// firstRun makes busmedic useful on its first day: when the user's rules
// file is missing, it writes the commented starter file, then offers a rule
// for each app of the shipped catalog (programs known not to survive a bus
// restart) that is on the session bus now, one notification each. A rule is
// added only when the user picks "Add rule". It returns at once when the
// rules file exists; otherwise once every offer is answered, so the daemon
// runs it in its own goroutine. notify shows a notification and returns the
// key of the action picked ("" when it was dismissed).
func firstRun(ctx context.Context, log *slog.Logger, sessionAddress, userRulesPath string,
	notify func(relaunch.Notice) (string, error)) error {
	catalog, err := assets.Catalog()
	if err != nil {
		return fmt.Errorf("first run: %w", err)
	}
	return firstRunWith(ctx, log, sessionAddress, userRulesPath, catalog, notify)
}

func firstRunWith(ctx context.Context, log *slog.Logger, sessionAddress, userRulesPath string, catalog []assets.CatalogApp,
	notify func(relaunch.Notice) (string, error)) error {
	if err := appdb.WriteStarter(userRulesPath); errors.Is(err, fs.ErrExist) {
		return nil // not the first run
	} else if err != nil {
		return fmt.Errorf("first run: %w", err)
	}
	log.Info("first run: wrote a starter rules file", "file", userRulesPath)
	if sessionAddress == "" {
		return nil
	}
	peers, err := sessionPeers(ctx, sessionAddress)
	if err != nil {
		return fmt.Errorf("first run: %w", err)
	}
	// System rules count: an administrator's rule for the app already
	// covers it. A broken system file only means offering too much.
	set, _ := appdb.Load(appdb.DefaultPaths(userRulesPath))
	for _, o := range appdb.Offers(catalog, peers, set) {
		key, err := notify(offerNotice(o, userRulesPath))
		if err != nil {
			return fmt.Errorf("first run: offer a rule for %s: %w", o.App.ID, err)
		}
		if key != offerAdd {
			log.Info("first run: rule not added", "app", o.App.ID, "answer", key)
			continue
		}
		if err := addRule(userRulesPath, o.Rule); err != nil {
			return fmt.Errorf("first run: %w", err)
		}
		log.Info("first run: rule added", "app", o.App.ID, "file", userRulesPath)
	}
	return nil
}

// offerNotice offers the rule of o, to be added to the rules file at
// path: "Add rule" (offerAdd) adds it; "Not now", or closing the
// notification, does not. Where the notification server shows no buttons,
// the body points to the rules editor, which makes the same offer.
func offerNotice(o appdb.Offer, path string) relaunch.Notice {
	again := "start it again"
	if o.App.Behaviour == assets.Deaf {
		again = "stop it and start it again"
	}
	return relaunch.Notice{
		Title: fmt.Sprintf("Relaunch %s after a bus restart?", o.App.ID),
		Body: fmt.Sprintf("%s is running and does not survive a restart of the session bus: %s.\n"+
			"busmedic can %s each time. The rule goes in %s.", o.App.Name, o.App.Why, again, path),
		Actions: []relaunch.Action{{Key: offerAdd, Label: "Add rule", Command: "busmedic rules edit"}, {Key: offerNotNow, Label: "Not now"}},
	}
}

// addRule adds r to the rules file, unless the user has meanwhile written
// a rule with its id: theirs wins. The file is opened anew for each rule
// because the user may edit it while a notification waits.
func addRule(path string, r appdb.Rule) error {
	f, err := appdb.OpenFile(path)
	if err != nil {
		return err
	}
	if _, taken := f.Lookup(r.ID); taken {
		return nil
	}
	if err := f.AddOrReplace(r); err != nil {
		return err
	}
	return f.Save()
}

// sessionPeers lists who is on the bus at address, with their names and
// processes: the watcher's inventory in one go, over a private connection
// closed after.
func sessionPeers(ctx context.Context, address string) ([]watcher.Peer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := dbus.Connect(address, dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", address, err)
	}
	defer conn.Close()
	bus := conn.BusObject()
	var names []string
	if err := bus.CallWithContext(ctx, "org.freedesktop.DBus.ListNames", 0).Store(&names); err != nil {
		return nil, fmt.Errorf("list names: %w", err)
	}
	peers := map[string]*watcher.Peer{}
	for _, n := range names {
		if !strings.HasPrefix(n, ":") || n == conn.Names()[0] {
			continue
		}
		p := watcher.Peer{UniqueName: n, UID: -1}
		var pid uint32
		// A peer gone meanwhile has no pid: it is left out of the offers,
		// which match on the executable.
		if bus.CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixProcessID", 0, n).Store(&pid) == nil {
			if info, err := watcher.ProcessInfo(int(pid)); err == nil {
				info.UniqueName = n
				p = info
			}
		}
		peers[n] = &p
	}
	for _, n := range names {
		if strings.HasPrefix(n, ":") || n == "org.freedesktop.DBus" {
			continue
		}
		var owner string
		if bus.CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, n).Store(&owner) == nil && peers[owner] != nil {
			peers[owner].Names = append(peers[owner].Names, n)
		}
	}
	var out []watcher.Peer
	for _, p := range peers {
		slices.Sort(p.Names)
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b watcher.Peer) int { return strings.Compare(a.UniqueName, b.UniqueName) })
	return out, nil
}
