package appdb_test

import (
	"os"
	"slices"
	"testing"
	"time"

	"busmedic/appdb"
	"busmedic/assets"
	"busmedic/watcher"
)

func TestOffers(t *testing.T) {
	uid := os.Getuid()
	catalog := []assets.CatalogApp{
		{ID: "dunst", Name: "Dunst notifications", Exe: "/usr/bin/dunst", Names: []string{"org.freedesktop.Notifications"}, Behaviour: assets.Exits, Verified: true},
		{ID: "nm-applet", Exe: "/usr/bin/nm-applet", Behaviour: assets.Exits, Verified: false},
	}
	dunst := watcher.Peer{UniqueName: ":1.7", Names: []string{"org.freedesktop.Notifications"}, PID: 42, UID: uid,
		Exe: "/usr/bin/dunst", Argv: []string{"dunst", "-config", "/home/ada/dunstrc"}, Cwd: "/home/ada"}
	nm := watcher.Peer{UniqueName: ":1.8", PID: 43, UID: uid, Exe: "/usr/bin/nm-applet", Argv: []string{"nm-applet"}}
	deleted := dunst
	deleted.Exe = "/usr/bin/dunst (deleted)" // after a package update
	other := dunst
	other.UID = uid + 1
	covered, err := appdb.Parse("apps.toml", []byte("[[app]]\nid = \"notes\"\nexe = \"/usr/bin/dunst\"\naction = \"ignore\"\n"))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		peers []watcher.Peer
		rules *appdb.Set
		want  []string
	}{
		{"verified app on the bus", []watcher.Peer{nm, dunst}, nil, []string{"dunst"}},
		{"executable replaced by an update", []watcher.Peer{deleted}, nil, []string{"dunst"}},
		{"unverified app is not offered", []watcher.Peer{nm}, nil, nil},
		{"another user's process", []watcher.Peer{other}, nil, nil},
		{"already covered by a rule", []watcher.Peer{dunst}, covered, nil},
		{"one offer for two processes", []watcher.Peer{dunst, dunst}, nil, []string{"dunst"}},
		{"nothing on the bus", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, o := range appdb.Offers(catalog, tc.peers, tc.rules) {
				got = append(got, o.Rule.ID)
				if err := o.Rule.Validate(); err != nil {
					t.Errorf("offered rule does not validate: %v", err)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("offers %v, want %v", got, tc.want)
			}
		})
	}

	o := appdb.Offers(catalog, []watcher.Peer{dunst}, nil)[0]
	r := o.Rule
	if r.Name != "Dunst notifications" || r.Exe != "/usr/bin/dunst" || !slices.Equal(r.Names, dunst.Names) ||
		!slices.Equal(r.Exec, dunst.Argv) || r.Action != appdb.ActionRelaunch {
		t.Errorf("offered rule %+v", r)
	}

	// dunst started by systemd-xdg-autostart-generator's unit: the rule
	// brings it back through that unit.
	inUnit := dunst
	inUnit.Unit = "app-dunst@autostart.service"
	if r := appdb.Offers(catalog, []watcher.Peer{inUnit}, nil)[0].Rule; r.Unit != inUnit.Unit {
		t.Errorf("offered rule for dunst in %s has unit %q", inUnit.Unit, r.Unit)
	}
}

// TestOffersDesktops: the rules offered for the panels of LXQt and Plasma
// and for Xfce's take the catalog's names, after, action and grace, not
// the names of the process alone or of a connection without them.
func TestOffersDesktops(t *testing.T) {
	uid := os.Getuid()
	watcherName := "org.kde.StatusNotifierWatcher"
	catalog := []assets.CatalogApp{
		{ID: "lxqt-panel", Exe: "/usr/bin/lxqt-panel", Names: []string{watcherName}, Behaviour: assets.Deaf, Action: assets.Relaunch, Verified: true},
		{ID: "kded5", Exe: "/usr/bin/kded5", Names: []string{"org.kde.kded5", watcherName}, Behaviour: assets.Deaf, Verified: true},
		{ID: "plasmashell", Exe: "/usr/bin/plasmashell", Names: []string{"org.kde.plasmashell"}, Behaviour: assets.Deaf,
			After: []string{"org.kde.kded5"}, Verified: true},
		{ID: "xfce4-panel", Exe: "/usr/bin/xfce4-panel", Names: []string{"org.xfce.Panel"}, Behaviour: assets.Exits, Verified: true},
	}
	peer := func(unique, exe string, pid int, names ...string) watcher.Peer {
		slices.Sort(names)
		return watcher.Peer{UniqueName: unique, Names: names, PID: pid, UID: uid, Exe: exe, Argv: []string{exe}}
	}
	lxqt := peer(":1.2", "/usr/bin/lxqt-panel", 20, watcherName, "org.kde.StatusNotifierHost-20-1")
	// kded5 outside a Plasma session: no watcher module.
	kded := peer(":1.3", "/usr/bin/kded5", 30, "org.kde.kded5", "org.kde.kappmenu")
	shell := peer(":1.4", "/usr/bin/plasmashell", 40, "org.kde.plasmashell", "org.kde.StatusNotifierHost-40", "org.freedesktop.Notifications")
	// xfce4-panel has two connections, the first without names.
	xfce := []watcher.Peer{peer(":1.5", "/usr/bin/xfce4-panel", 50), peer(":1.6", "/usr/bin/xfce4-panel", 50, "org.xfce.Panel")}

	want := map[string]struct {
		names, after []string
		grace        time.Duration
	}{
		"lxqt-panel":  {[]string{watcherName}, nil, 0},
		"kded5":       {[]string{"org.kde.kded5"}, nil, 0},
		"plasmashell": {[]string{"org.kde.plasmashell"}, []string{"org.kde.kded5"}, 0},
		"xfce4-panel": {[]string{"org.xfce.Panel"}, nil, appdb.DefaultGrace},
	}
	offers := appdb.Offers(catalog, append([]watcher.Peer{lxqt, kded, shell}, xfce...), nil)
	if len(offers) != len(want) {
		t.Fatalf("%d offers, want %d: %+v", len(offers), len(want), offers)
	}
	for _, o := range offers {
		w, r := want[o.App.ID], o.Rule
		if !slices.Equal(r.Names, w.names) || !slices.Equal(r.After, w.after) || r.Grace != w.grace || r.Action != appdb.ActionRelaunch {
			t.Errorf("%s: names %q after %q grace %s action %s; want names %q after %q grace %s, relaunch",
				o.App.ID, r.Names, r.After, r.Grace, r.Action, w.names, w.after, w.grace)
		}
	}
}

// TestShippedCatalogOffers: every verified entry of the shipped catalog
// yields a valid rule for a process that runs its executable.
func TestShippedCatalogOffers(t *testing.T) {
	catalog, err := assets.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range catalog {
		if !app.Verified {
			continue
		}
		p := watcher.Peer{UniqueName: ":1.1", Names: app.Names, PID: 1, UID: os.Getuid(), Exe: app.Exe, Argv: []string{app.Exe}}
		if offers := appdb.Offers(catalog, []watcher.Peer{p}, nil); len(offers) != 1 || offers[0].Rule.ID != app.ID {
			t.Errorf("%s: offers %+v", app.ID, offers)
		}
	}
}
