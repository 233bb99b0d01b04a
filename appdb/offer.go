package appdb

import (
	"os"
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
// is FromPeer's (its names, executable, command line and user unit), with the
// catalog's id and name, and has passed validation. Unverified entries are
// never offered: their claim was not checked, and a needless relaunch rule
// would stop an app that reconnects by itself.
func Offers(catalog []assets.CatalogApp, peers []watcher.Peer, rules *Set) []Offer {
	uid := os.Getuid()
	var out []Offer
	for _, app := range catalog {
		if !app.Verified || app.Exe == "" {
			continue
		}
		for _, p := range peers {
			if strings.TrimSuffix(p.Exe, " (deleted)") != app.Exe || p.UID >= 0 && p.UID != uid {
				continue
			}
			if rules != nil {
				if _, ok := rules.MatchBus(BusSession, p); ok {
					break
				}
			}
			r := FromPeer(p)
			r.ID, r.Name = app.ID, app.Name
			if r.Validate() != nil {
				continue
			}
			out = append(out, Offer{App: app, Peer: p, Rule: r})
			break
		}
	}
	return out
}
