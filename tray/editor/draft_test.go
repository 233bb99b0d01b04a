package editor

import (
	"strings"
	"testing"
	"time"

	"busmedic/appdb"
)

func TestDurationOf(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want duration
	}{
		{0, duration{"0", "s"}},
		{2 * time.Second, duration{"2", "s"}},
		{1500 * time.Millisecond, duration{"1500", "ms"}},
		{90 * time.Second, duration{"90", "s"}},
		{10 * time.Minute, duration{"10", "min"}},
		{2 * time.Hour, duration{"2", "h"}},
		{1500 * time.Microsecond, duration{"1.5", "ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.in.String(), func(t *testing.T) {
			got := durationOf(tt.in)
			if got != tt.want {
				t.Fatalf("durationOf(%s) = %v, want %v", tt.in, got, tt.want)
			}
			back, err := got.Parse()
			if err != nil || back != tt.in {
				t.Errorf("Parse(%v) = %s, %v; want %s", got, back, err, tt.in)
			}
		})
	}
}

func TestDurationParseErrors(t *testing.T) {
	for _, d := range []duration{{"", "s"}, {"abc", "s"}, {"-1", "s"}, {"2", ""}, {"2", "weeks"}, {"1e300", "h"}} {
		if _, err := d.Parse(); err == nil {
			t.Errorf("Parse(%v) = nil error", d)
		}
	}
}

func TestDraftRoundTrip(t *testing.T) {
	r := appdb.NewRule("nm-applet")
	r.Name, r.Bus, r.Names, r.Exe = "Network", appdb.BusSystem, []string{"org.example.A"}, "/usr/bin/nm-applet"
	r.Exec, r.After, r.Env = []string{"/usr/bin/nm-applet", "--indicator"}, []string{"org.freedesktop.NetworkManager"}, map[string]string{"A": "1", "B": "2"}
	r.Grace, r.RestartWindow, r.MaxRestarts, r.Enabled = 5*time.Second, 10*time.Minute, 3, false
	got, problems := draftOf(r).Rule()
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	if appdb.FormatRule(got) != appdb.FormatRule(r) {
		t.Errorf("round trip:\n%s\nwant\n%s", appdb.FormatRule(got), appdb.FormatRule(r))
	}
	if !draftOf(r).Equal(draftOf(got)) {
		t.Error("Equal = false for the same rule")
	}
}

// TestCheck puts each problem at the field that shows it.
func TestCheck(t *testing.T) {
	valid := func() draft {
		r := appdb.NewRule("dunst")
		r.Names = []string{"org.freedesktop.Notifications"}
		return draftOf(r)
	}
	tests := []struct {
		name   string
		edit   func(*draft)
		field  string
		reason string // part of the error
	}{
		{"bad id", func(d *draft) { d.ID = "Dunst!" }, "id", "bad id"},
		{"missing id", func(d *draft) { d.ID = "" }, "id", "missing"},
		{"taken id", func(d *draft) { d.ID = "panel" }, "id", "already has the id"},
		{"bad bus name", func(d *draft) { d.Names = []string{"Notifications"} }, "names", "bad bus name"},
		{"no matcher", func(d *draft) { d.Names = []string{" "} }, "names", "no matcher"},
		{"relative exe", func(d *draft) { d.Exe = "bin/dunst" }, "exe", "absolute"},
		{"bad glob", func(d *draft) { d.Argv0 = "[abc" }, "argv0", ""},
		{"signal missing", func(d *draft) { d.Action = "signal" }, "signal", "needs a signal"},
		{"unknown signal", func(d *draft) { d.Action, d.Signal = "signal", "SIGFOO" }, "signal", "unknown signal"},
		{"hook missing", func(d *draft) { d.Action = "hook" }, "hook", "needs a hook"},
		{"shell with two", func(d *draft) { d.Shell, d.Exec = true, []string{"a", "b"} }, "exec", "exactly one"},
		{"bad env name", func(d *draft) { d.Env = []kv{{"1X", "y"}} }, "env", "bad environment variable"},
		{"env value without name", func(d *draft) { d.Env = []kv{{"", "y"}} }, "env", "no variable name"},
		{"env twice", func(d *draft) { d.Env = []kv{{"A", "1"}, {"A", "2"}} }, "env", "twice"},
		{"relative workdir", func(d *draft) { d.Workdir = "tmp" }, "workdir", "absolute"},
		{"bad after", func(d *draft) { d.After = []string{":1.2"} }, "after", ""},
		{"grace not a number", func(d *draft) { d.Grace.Value = "2x" }, "grace", "want a number"},
		{"zero ready timeout", func(d *draft) { d.ReadyTimeout = duration{"0", "s"} }, "ready_timeout", ""},
		{"max restarts text", func(d *draft) { d.MaxRestarts = "many" }, "max_restarts", "whole number"},
		{"max restarts range", func(d *draft) { d.MaxRestarts = "0" }, "max_restarts", "1 to 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := valid()
			tt.edit(&d)
			_, errs, _ := d.Check([]string{"panel"})
			got, ok := errs[tt.field]
			if !ok || !strings.Contains(got, tt.reason) {
				t.Errorf("errs = %q, want at %q an error with %q", errs, tt.field, tt.reason)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		if _, errs, _ := valid().Check([]string{"panel"}); len(errs) > 0 {
			t.Errorf("errs = %v", errs)
		}
	})
	t.Run("warning", func(t *testing.T) {
		d := valid()
		d.Exec = []string{"no-such-program-busmedic"}
		_, errs, warns := d.Check(nil)
		if len(errs) > 0 || !strings.Contains(warns["exec"], "not found") {
			t.Errorf("errs = %v, warns = %v; want a warning at exec", errs, warns)
		}
	})
}
