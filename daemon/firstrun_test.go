package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"busmedic/appdb"
	"busmedic/assets"
	"busmedic/relaunch"
	"busmedic/watcher/bustest"
)

// legacyCatalog is a catalog whose one verified app is bustest's testapp
// owning org.example.Legacy, on a real bus.
func legacyCatalog(t *testing.T) (*bustest.Bus, []assets.CatalogApp) {
	bus := bustest.New(t)
	bus.StartApp("-name", "org.example.Legacy", "-mode", "exit")
	exe, err := filepath.EvalSymlinks(bustest.TestApp(t))
	if err != nil {
		t.Fatal(err)
	}
	return bus, []assets.CatalogApp{{ID: "legacy", Name: "Legacy app", Exe: exe, Names: []string{"org.example.Legacy"},
		Behaviour: assets.Exits, Why: "it exits with its bus", Verified: true, Evidence: "test"}}
}

// asked records the offers and answers each with answer.
type asked struct {
	titles  []string
	actions [][]string
	answer  string
	err     error
}

func (a *asked) notify(n relaunch.Notice) (string, error) {
	a.titles = append(a.titles, n.Title)
	var keys []string
	for _, act := range n.Actions {
		keys = append(keys, act.Key, act.Label)
	}
	a.actions = append(a.actions, keys)
	return a.answer, a.err
}

var discard = slog.New(slog.DiscardHandler)

func TestFirstRunAdd(t *testing.T) {
	bus, catalog := legacyCatalog(t)
	path := filepath.Join(t.TempDir(), "busmedic", "apps.toml")
	a := &asked{answer: offerAdd}
	if err := firstRunWith(context.Background(), discard, bus.Address(), path, catalog, a.notify); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.titles, []string{"Relaunch legacy after a bus restart?"}) {
		t.Errorf("offers %q", a.titles)
	}
	if len(a.actions) > 0 && !slices.Equal(a.actions[0], []string{"add", "Add rule", "not-now", "Not now"}) {
		t.Errorf("actions %q", a.actions[0])
	}
	set, err := appdb.CheckFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := set.Lookup("legacy")
	if !ok || r.Exe != catalog[0].Exe || !slices.Equal(r.Names, []string{"org.example.Legacy"}) {
		t.Errorf("rule after yes: %+v, %v", r, ok)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "# busmedic relaunch rules.") {
		t.Errorf("the starter's comments are gone:\n%s", data)
	}
}

// TestFirstRunDeafPanel: a panel that stays deaf (the shape of lxqt-panel,
// kded5 and plasmashell in the catalog) is offered with the catalog's
// names, not the name of its own process, no grace, and its after.
func TestFirstRunDeafPanel(t *testing.T) {
	bus := bustest.New(t)
	app := bus.StartApp("-name", "org.example.Panel", "-name", "org.example.Host-1234", "-mode", "deaf")
	exe, err := filepath.EvalSymlinks(bustest.TestApp(t))
	if err != nil {
		t.Fatal(err)
	}
	catalog := []assets.CatalogApp{{ID: "panel", Name: "A panel", Exe: exe, Names: []string{"org.example.Panel", "org.example.Watcher"},
		After: []string{"org.example.Daemon"}, Behaviour: assets.Deaf, Action: assets.Relaunch, Why: "it stays alive but deaf",
		Verified: true, Evidence: "test"}}
	path := filepath.Join(t.TempDir(), "apps.toml")
	a := &asked{answer: offerAdd}
	if err := firstRunWith(context.Background(), discard, bus.Address(), path, catalog, a.notify); err != nil {
		t.Fatal(err)
	}
	set, err := appdb.CheckFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := set.Lookup("panel")
	if !ok || !slices.Equal(r.Names, []string{"org.example.Panel"}) || !slices.Equal(r.After, []string{"org.example.Daemon"}) ||
		r.Grace != 0 || r.Action != appdb.ActionRelaunch || !slices.Equal(r.Exec, app.Cmd.Args) {
		t.Errorf("rule after yes: %+v, %v", r, ok)
	}
}

// TestFirstRunNoYes: without the user's yes, no rule.
func TestFirstRunNoYes(t *testing.T) {
	bus, catalog := legacyCatalog(t)
	for _, a := range []*asked{{answer: offerNotNow}, {answer: ""}, {err: errors.New("no notification server")}} {
		path := filepath.Join(t.TempDir(), "apps.toml")
		err := firstRunWith(context.Background(), discard, bus.Address(), path, catalog, a.notify)
		if (err != nil) != (a.err != nil) {
			t.Errorf("answer %q, %v: firstRun returned %v", a.answer, a.err, err)
		}
		set, err := appdb.CheckFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(set.Rules()) != 0 || len(a.titles) != 1 {
			t.Errorf("answer %q, %v: rules %v after %d offers", a.answer, a.err, set.Rules(), len(a.titles))
		}
	}
}

// TestFirstRunOnlyOnce: with a rules file in place, firstRun neither asks
// nor writes.
func TestFirstRunOnlyOnce(t *testing.T) {
	bus, catalog := legacyCatalog(t)
	path := filepath.Join(t.TempDir(), "apps.toml")
	if err := os.WriteFile(path, []byte("version = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &asked{answer: offerAdd}
	if err := firstRunWith(context.Background(), discard, bus.Address(), path, catalog, a.notify); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); len(a.titles) != 0 || string(data) != "version = 1\n" {
		t.Errorf("firstRun acted on an existing file: offers %q, file %q", a.titles, data)
	}
}

// TestFirstRunShippedCatalog runs the real entry point against the shipped
// catalog: on a bus without any catalog app it writes the starter and asks
// nothing.
func TestFirstRunShippedCatalog(t *testing.T) {
	bus := bustest.New(t)
	path := filepath.Join(t.TempDir(), "apps.toml")
	a := &asked{answer: offerAdd}
	if err := firstRun(context.Background(), discard, bus.Address(), path, a.notify); err != nil {
		t.Fatal(err)
	}
	if _, err := appdb.CheckFile(path); err != nil || len(a.titles) != 0 {
		t.Errorf("starter: %v; offers %q", err, a.titles)
	}
}
