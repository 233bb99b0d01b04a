package editor

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"busmedic/appdb"
)

// keyNames are the names of appdb.RuleKeys, in order.
func keyNames() []string {
	var names []string
	for _, k := range appdb.RuleKeys() {
		names = append(names, k.Name)
	}
	return names
}

// everyKeySet returns a rule in which every key holds a value other than
// its default, so that a key a conversion forgets shows.
func everyKeySet(t *testing.T) appdb.Rule {
	t.Helper()
	r := appdb.Rule{
		ID: "full", Name: "Full", Icon: "full-icon", Desktop: "full.desktop", Bus: appdb.BusSystem,
		Names: []string{"org.example.Full"}, Exe: "/usr/bin/full", Argv0: "full*", Cmdline: "full --x*",
		Action: appdb.ActionHook, Signal: "SIGUSR1", Hook: []string{"/bin/true", "--again"}, Unit: "app-full@autostart.service",
		Exec: []string{"/bin/true --start"}, Shell: true, Env: map[string]string{"A": "1", "B": "2"},
		Workdir: "/tmp", After: []string{"org.example.Before"},
		Grace: 0, ReadyTimeout: 30 * time.Second, StopTimeout: 1500 * time.Millisecond,
		MaxRestarts: 3, RestartWindow: 10 * time.Minute, Enabled: false,
	}
	for _, k := range appdb.RuleKeys() {
		if reflect.DeepEqual(k.Value(r), k.Default()) {
			t.Fatalf("everyKeySet leaves %s at its default %v: set it", k.Name, k.Default())
		}
	}
	return r
}

// TestDraftHasEveryKey checks that draft has one field per key, in order.
func TestDraftHasEveryKey(t *testing.T) {
	var tags []string
	for _, f := range reflect.VisibleFields(reflect.TypeFor[draft]()) {
		tags = append(tags, f.Tag.Get("key"))
	}
	if want := keyNames(); !slices.Equal(tags, want) {
		t.Errorf("draft's fields are the keys\n%q\nwant (appdb.RuleKeys)\n%q", tags, want)
	}
}

// TestDraftKeepsEveryKey takes a rule with every key set through a draft
// and back.
func TestDraftKeepsEveryKey(t *testing.T) {
	r := everyKeySet(t)
	got, problems := draftOf(r).Rule()
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	for _, k := range appdb.RuleKeys() {
		if !reflect.DeepEqual(k.Value(got), k.Value(r)) {
			t.Errorf("%s = %v after draftOf and Rule, want %v", k.Name, k.Value(got), k.Value(r))
		}
	}
}

// TestFormHasEveryKey checks that the form has a field for every key (and
// for nothing else), in the keys' order, with the key's hint, and selects
// offering its choices.
func TestFormHasEveryKey(t *testing.T) {
	test.NewTempApp(t)
	f := newRuleForm(func(fyne.Focusable) {}, func(func(*draft)) {}) // fails on a key without a field
	widgets := f.widgets()
	for _, name := range keyNames() {
		delete(widgets, name)
	}
	for name := range widgets {
		t.Errorf("the form has a field for %q, which is no key", name)
	}

	form := findForm(f.content)
	if form == nil {
		t.Fatal("no widget.Form in the rule form")
	}
	var labels []string
	for i, item := range form.Items {
		labels = append(labels, item.Text)
		if k := appdb.RuleKeys(); i < len(k) && item.HintText != k[i].Hint {
			t.Errorf("hint of %s = %q, want %q", item.Text, item.HintText, k[i].Hint)
		}
	}
	if want := keyNames(); !slices.Equal(labels, want) {
		t.Errorf("form items\n%q\nwant\n%q", labels, want)
	}
	for _, k := range appdb.RuleKeys() {
		if s, ok := f.widgets()[k.Name].(*widget.Select); ok && !slices.Equal(s.Options, k.Choices) {
			t.Errorf("%s offers %q, want %q", k.Name, s.Options, k.Choices)
		}
	}
}

// TestFormShowsEveryKey checks that set shows every key (each field shows
// something else for a rule with every key set than for the defaults),
// and that setReadOnly leaves no control of any field enabled.
func TestFormShowsEveryKey(t *testing.T) {
	test.NewTempApp(t)
	f := newRuleForm(func(fyne.Focusable) {}, func(func(*draft)) {})
	f.set(draftOf(appdb.NewRule("")))
	before := map[string]string{}
	for name, w := range f.widgets() {
		before[name] = shown(w)
	}
	f.set(draftOf(everyKeySet(t)))
	for name, w := range f.widgets() {
		if shown(w) == before[name] {
			t.Errorf("field %s shows %q for both rules: set does not show it", name, before[name])
		}
	}

	f.setReadOnly(true)
	for name, w := range f.widgets() {
		if on := enabled(w); len(on) > 0 {
			t.Errorf("field %s of a read-only form has enabled controls: %v", name, on)
		}
	}
}

func findForm(o fyne.CanvasObject) *widget.Form {
	switch o := o.(type) {
	case *widget.Form:
		return o
	case *fyne.Container:
		for _, c := range o.Objects {
			if f := findForm(c); f != nil {
				return f
			}
		}
	}
	return nil
}

// shown is what a field shows: the text, choice or tick of each of its
// widgets.
func shown(o fyne.CanvasObject) string {
	switch w := o.(type) {
	case *fyne.Container:
		var parts []string
		for _, c := range w.Objects {
			parts = append(parts, shown(c))
		}
		return strings.Join(parts, "|")
	case *widget.SelectEntry:
		return w.Text
	case *widget.Entry:
		return w.Text
	case *widget.Select:
		return w.Selected
	case *widget.Check:
		return strconv.FormatBool(w.Checked)
	}
	return ""
}

// enabled lists the controls of a field that are not disabled.
func enabled(o fyne.CanvasObject) []string {
	var on []string
	switch w := o.(type) {
	case *fyne.Container:
		for _, c := range w.Objects {
			on = append(on, enabled(c)...)
		}
	case fyne.Disableable:
		if !w.Disabled() {
			on = append(on, reflect.TypeOf(w).String())
		}
	}
	return on
}
