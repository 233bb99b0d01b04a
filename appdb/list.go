package appdb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteJSON writes rules as a JSON array, indented by two spaces, as
// "busmedic rules list --json" prints them for scripts. Each rule is an
// object with each key of apps.toml under its own name, in RuleKeys'
// order, durations as strings such as "2s", then "source" and "line", the
// file and line the rule comes from. An optional key is left out when it
// is empty and so is its default: a rule without a name has no "name",
// but "enabled": false is always there.
func WriteJSON(w io.Writer, rules []Rule) error {
	out := make([]ruleJSON, len(rules))
	for i, r := range rules {
		out[i] = ruleJSON(r)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// ruleJSON is a rule as WriteJSON writes it.
type ruleJSON Rule

func (r ruleJSON) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	add := func(name string, v any) error {
		value, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(name))
		b.WriteByte(':')
		b.Write(value)
		return nil
	}
	for _, k := range ruleKeys {
		v := k.Value(Rule(r))
		if !k.Required && isEmpty(v) && isEmpty(k.Default()) {
			continue
		}
		if d, ok := v.(time.Duration); ok {
			v = d.String()
		}
		if err := add(k.Name, v); err != nil {
			return nil, err
		}
	}
	if err := add("source", r.Source); err != nil {
		return nil, err
	}
	if err := add("line", r.Line); err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// isEmpty is what encoding/json's omitempty calls empty.
func isEmpty(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Map:
		return rv.Len() == 0
	}
	return rv.IsZero()
}

// WriteTable writes rules as a table for people, as "busmedic rules list"
// prints them: a header line, then per rule its id, bus, action (or
// "disabled"), what it matches and the file and line it comes from.
func WriteTable(w io.Writer, rules []Rule) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tBUS\tACTION\tMATCH\tSOURCE")
	for _, r := range rules {
		action := string(r.Action)
		if !r.Enabled {
			action = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s:%d\n", r.ID, r.Bus, action, matchers(r), r.Source, r.Line)
	}
	return tw.Flush()
}

// matchers says what a rule matches, such as "names=org.example.A
// exe=/usr/bin/a", or "-" for nothing (a disabled rule).
func matchers(r Rule) string {
	var m []string
	if len(r.Names) > 0 {
		m = append(m, "names="+strings.Join(r.Names, ","))
	}
	if r.Exe != "" {
		m = append(m, "exe="+r.Exe)
	}
	if r.Argv0 != "" {
		m = append(m, "argv0="+r.Argv0)
	}
	if r.Cmdline != "" {
		m = append(m, "cmdline="+strconv.Quote(r.Cmdline))
	}
	if len(m) == 0 {
		return "-"
	}
	return strings.Join(m, " ")
}
