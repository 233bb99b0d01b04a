package editor

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"busmedic/appdb"
)

// kv is one row of the env table.
type kv struct{ Key, Value string }

// duration is a duration as the form shows it: a number and a unit, so
// that nobody has to know Go's duration syntax.
type duration struct {
	Value string // such as "2" or "1.5"
	Unit  string // one of units
}

// units are the duration units the form offers, smallest first.
var units = []string{"ms", "s", "min", "h"}

var unitSize = map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "min": time.Minute, "h": time.Hour}

// durationOf picks the largest unit that shows d as a whole number.
func durationOf(d time.Duration) duration {
	for _, u := range slices.Backward(units) {
		if size := unitSize[u]; d%size == 0 && (d != 0 || u == "s") {
			return duration{Value: strconv.FormatInt(int64(d/size), 10), Unit: u}
		}
	}
	// Below a millisecond: show a fraction of one.
	return duration{Value: strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64), Unit: "ms"}
}

// Parse returns the duration, or an error in words for the field.
func (d duration) Parse() (time.Duration, error) {
	size, ok := unitSize[d.Unit]
	if !ok {
		return 0, fmt.Errorf("pick a unit: %s", strings.Join(units, ", "))
	}
	s := strings.TrimSpace(d.Value)
	if s == "" {
		return 0, errors.New("want a number, such as 2")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > float64(1<<62)/float64(size) {
		return 0, fmt.Errorf("want a number of %s, such as 2, got %q", d.Unit, s)
	}
	return time.Duration(f * float64(size)), nil
}

// draft is the form's content: every key of an [[app]] table, as the
// widgets hold it. It is converted to an appdb.Rule (Rule) to be checked
// and saved. Each field's tag names its key, so that a test can hold the
// fields against appdb.RuleKeys.
type draft struct {
	ID            string   `key:"id"`
	Name          string   `key:"name"`
	Icon          string   `key:"icon"`
	Desktop       string   `key:"desktop"`
	Bus           string   `key:"bus"`
	Names         []string `key:"names"`
	Exe           string   `key:"exe"`
	Argv0         string   `key:"argv0"`
	Cmdline       string   `key:"cmdline"`
	Action        string   `key:"action"`
	Signal        string   `key:"signal"`
	Hook          []string `key:"hook"`
	Unit          string   `key:"unit"`
	Exec          []string `key:"exec"`
	Shell         bool     `key:"shell"`
	Env           []kv     `key:"env"`
	Workdir       string   `key:"workdir"`
	After         []string `key:"after"`
	Grace         duration `key:"grace"`
	ReadyTimeout  duration `key:"ready_timeout"`
	StopTimeout   duration `key:"stop_timeout"`
	MaxRestarts   string   `key:"max_restarts"`
	RestartWindow duration `key:"restart_window"`
	Enabled       bool     `key:"enabled"`
}

// draftOf fills a draft from a rule.
func draftOf(r appdb.Rule) draft {
	d := draft{
		ID: r.ID, Name: r.Name, Icon: r.Icon, Desktop: r.Desktop,
		Bus:   string(r.Bus),
		Names: slices.Clone(r.Names), Exe: r.Exe, Argv0: r.Argv0, Cmdline: r.Cmdline,
		Action: string(r.Action), Signal: r.Signal,
		Hook: slices.Clone(r.Hook), Unit: r.Unit, Exec: slices.Clone(r.Exec), Shell: r.Shell,
		Workdir: r.Workdir, After: slices.Clone(r.After),
		Grace: durationOf(r.Grace), ReadyTimeout: durationOf(r.ReadyTimeout), StopTimeout: durationOf(r.StopTimeout),
		MaxRestarts: strconv.Itoa(r.MaxRestarts), RestartWindow: durationOf(r.RestartWindow),
		Enabled: r.Enabled,
	}
	if d.Bus == "" {
		d.Bus = string(appdb.DefaultBus)
	}
	if d.Action == "" {
		d.Action = string(appdb.DefaultAction)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Env)) {
		d.Env = append(d.Env, kv{k, r.Env[k]})
	}
	return d
}

// Equal reports whether two drafts would make the same rule, so that an
// edit undone by hand does not count as unsaved.
func (d draft) Equal(o draft) bool {
	a, errA := d.Rule()
	b, errB := o.Rule()
	if len(errA) > 0 || len(errB) > 0 {
		return fmt.Sprintf("%#v", d) == fmt.Sprintf("%#v", o)
	}
	return appdb.FormatRule(a) == appdb.FormatRule(b)
}

// problems maps a form field (an [[app]] key such as "grace", or "" for the
// rule as a whole) to what is wrong with it.
type problems map[string]string

func (p problems) add(key, reason string) {
	if old, ok := p[key]; ok {
		p[key] = old + "; " + reason
		return
	}
	p[key] = reason
}

// Rule converts the draft. Blank rows of the lists and of env are left out.
// The problems are those of the conversion alone (a duration that is not a
// number); Check adds appdb's.
func (d draft) Rule() (appdb.Rule, problems) {
	p := problems{}
	r := appdb.Rule{
		ID: strings.TrimSpace(d.ID), Name: d.Name, Icon: strings.TrimSpace(d.Icon), Desktop: strings.TrimSpace(d.Desktop),
		Bus:   appdb.Bus(d.Bus),
		Names: nonBlank(d.Names), Exe: strings.TrimSpace(d.Exe), Argv0: d.Argv0, Cmdline: d.Cmdline,
		Action: appdb.Action(d.Action), Signal: strings.TrimSpace(d.Signal),
		Hook: nonBlank(d.Hook), Unit: strings.TrimSpace(d.Unit), Exec: nonBlank(d.Exec), Shell: d.Shell,
		Workdir: strings.TrimSpace(d.Workdir), After: nonBlank(d.After),
		Enabled: d.Enabled,
	}
	for _, kv := range d.Env {
		k := strings.TrimSpace(kv.Key)
		switch {
		case k == "" && kv.Value == "":
			continue
		case k == "":
			p.add("env", fmt.Sprintf("value %q has no variable name", kv.Value))
			continue
		}
		if r.Env == nil {
			r.Env = map[string]string{}
		}
		if _, dup := r.Env[k]; dup {
			p.add("env", fmt.Sprintf("%s is given twice", k))
		}
		r.Env[k] = kv.Value
	}
	durations := []struct {
		key string
		in  duration
		out *time.Duration
	}{
		{"grace", d.Grace, &r.Grace},
		{"ready_timeout", d.ReadyTimeout, &r.ReadyTimeout},
		{"stop_timeout", d.StopTimeout, &r.StopTimeout},
		{"restart_window", d.RestartWindow, &r.RestartWindow},
	}
	for _, dur := range durations {
		v, err := dur.in.Parse()
		if err != nil {
			p.add(dur.key, err.Error())
		}
		*dur.out = v
	}
	n, err := strconv.Atoi(strings.TrimSpace(d.MaxRestarts))
	if err != nil {
		p.add("max_restarts", fmt.Sprintf("want a whole number from 1 to 1000, got %q", d.MaxRestarts))
		n = appdb.DefaultMaxRestarts
	}
	r.MaxRestarts = n
	return r, p
}

// nonBlank returns the rows that hold something, or nil.
func nonBlank(rows []string) []string {
	var out []string
	for _, s := range rows {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

// Check converts the draft and validates it with appdb, as the file would
// be on load. takenIDs are the ids of the other rules of the user file: a
// rule may not take one of them. errs block saving; warns do not.
func (d draft) Check(takenIDs []string) (r appdb.Rule, errs, warns problems) {
	r, errs = d.Rule()
	warns = problems{}
	if r.ID != "" && slices.Contains(takenIDs, r.ID) {
		errs.add("id", fmt.Sprintf("another rule of your file already has the id %q", r.ID))
	}
	// appdb.Parse rather than Rule.Validate: it gives the warnings too
	// (a program not found), which the form shows without blocking.
	set, err := appdb.Parse("(rule)", []byte("version = 1\n"+appdb.FormatRule(r)))
	var es appdb.Errors
	switch {
	case errors.As(err, &es):
		for _, e := range es {
			errs.add(field(e.Key), e.Reason)
		}
	case err != nil:
		errs.add("", err.Error())
	default:
		for _, w := range set.Warnings() {
			warns.add(field(w.Key), w.Reason)
		}
	}
	return r, errs, warns
}

// field maps an appdb key such as "env.LANG" to the form field that shows
// it.
func field(key string) string {
	k, _, _ := strings.Cut(key, ".")
	return k
}
