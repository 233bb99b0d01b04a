package appdb

import (
	"os"
	"slices"
	"strings"

	"busmedic/assets"
	"busmedic/watcher"
)

// Offer is a rule busmedic proposes for an app of the catalog (programs
// known not to survive a bus restart) that is on the bus now. It is only a
// proposal: the rule goes in a file only when the user says yes.
type Offer struct {
	App  assets.CatalogApp
	Peer watcher.Peer
	Rule Rule
}

// Offers returns one offer per verified catalog app that has a peer among
// peers: a process of this user whose executable is the app's. Apps that a
// rule of rules already matches are left out (rules may be nil). The rule
// is FromPeer's (its executable, command line and user unit), with the
// catalog's id, name, action and after, and has passed validation. Its
// names are those of the catalog's names the peer owns: the catalog lists
// only names that a new copy takes again, where the peer may also own
// names of its own process (lxqt-panel's
// org.kde.StatusNotifierHost-PID-1), which a relaunch would wait for in
// vain. An app that the catalog says stays deaf gets no grace: it was
// checked never to come back by itself, so waiting would only delay it.
// Unverified entries are never offered: their claim was not checked, and
// a needless relaunch rule would stop an app that reconnects by itself.
func Offers(catalog []assets.CatalogApp, peers []watcher.Peer, rules *Set) []Offer {
	uid := os.Getuid()
	var out []Offer
	for _, app := range catalog {
		if !app.Verified || app.Exe == "" {
			continue
		}
		var conns []watcher.Peer
		for _, p := range peers {
			if strings.TrimSuffix(p.Exe, " (deleted)") == app.Exe && (p.UID < 0 || p.UID == uid) {
				conns = append(conns, p)
			}
		}
		if rules != nil && slices.ContainsFunc(conns, func(p watcher.Peer) bool { _, ok := rules.MatchBus(BusSession, p); return ok }) {
			continue
		}
		// A process may have more than one connection (xfce4-panel has
		// two, one without names): the one with the most of the app's
		// names first.
		slices.SortStableFunc(conns, func(a, b watcher.Peer) int { return len(appNames(app, b)) - len(appNames(app, a)) })
		for _, p := range conns {
			r := FromPeer(p)
			r.ID, r.Name = app.ID, app.Name
			r.Names = appNames(app, p)
			r.After = slices.Clone(app.After)
			if app.Action != "" {
				r.Action = Action(app.Action)
			}
			if app.Behaviour == assets.Deaf {
				r.Grace = 0
			}
			if r.Validate() != nil {
				continue
			}
			out = append(out, Offer{App: app, Peer: p, Rule: r})
			break
		}
	}
	return out
}

// appNames returns the catalog app's names that p owns.
func appNames(app assets.CatalogApp, p watcher.Peer) []string {
	return slices.DeleteFunc(slices.Clone(app.Names), func(n string) bool { return !slices.Contains(p.Names, n) })
}
