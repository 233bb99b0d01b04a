package keep

import (
	"fmt"
	"strconv"
	"strings"
)

// Match rules, as AddMatch takes them: the keeper replays them, maps the
// unique names in them to the current bus's, and evaluates them against
// the signals it makes up itself, which an app must get only if it asked.

// matchKV is one key='value' of a rule.
type matchKV struct{ key, value string }

// parseMatch splits a match rule into its keys and values. Values are
// quoted with '; outside quotes \' is a quote (the specification's only
// escape).
func parseMatch(rule string) ([]matchKV, error) {
	var out []matchKV
	i := 0
	for i < len(rule) {
		for i < len(rule) && (rule[i] == ' ' || rule[i] == ',') {
			i++
		}
		if i == len(rule) {
			break
		}
		eq := strings.IndexByte(rule[i:], '=')
		if eq < 0 {
			return nil, fmt.Errorf("match rule %q: key without value", rule)
		}
		key := strings.TrimSpace(rule[i : i+eq])
		i += eq + 1
		var v strings.Builder
		quoted := false
	value:
		for ; i < len(rule); i++ {
			c := rule[i]
			switch {
			case c == '\'':
				quoted = !quoted
			case quoted:
				v.WriteByte(c)
			case c == '\\' && i+1 < len(rule) && rule[i+1] == '\'':
				v.WriteByte('\'')
				i++
			case c == ',':
				i++
				break value
			default:
				v.WriteByte(c)
			}
		}
		if quoted {
			return nil, fmt.Errorf("match rule %q: unterminated quote", rule)
		}
		out = append(out, matchKV{key, v.String()})
	}
	return out, nil
}

// formatMatch writes a rule back, every value quoted.
func formatMatch(kvs []matchKV) string {
	var b strings.Builder
	for i, kv := range kvs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv.key)
		b.WriteString("='")
		b.WriteString(strings.ReplaceAll(kv.value, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}

// mapMatch returns rule with the unique names in its sender, destination
// and argN values mapped by f (f returns "" to leave a name alone), or
// rule itself if nothing changes or it does not parse.
func mapMatch(rule string, f func(string) string) string {
	kvs, err := parseMatch(rule)
	if err != nil {
		return rule
	}
	changed := false
	for i, kv := range kvs {
		if !strings.HasPrefix(kv.value, ":") {
			continue
		}
		if kv.key != "sender" && kv.key != "destination" && !isArgKey(kv.key) {
			continue
		}
		if to := f(kv.value); to != "" && to != kv.value {
			kvs[i].value = to
			changed = true
		}
	}
	if !changed {
		return rule
	}
	return formatMatch(kvs)
}

func isArgKey(key string) bool {
	n, ok := strings.CutPrefix(key, "arg")
	if !ok {
		return false
	}
	_, err := strconv.Atoi(n)
	return err == nil
}

// watchedName returns the name a rule watches the owner of (its arg0 if it
// is about NameOwnerChanged), or "".
func watchedName(rule string) string {
	kvs, err := parseMatch(rule)
	if err != nil {
		return ""
	}
	var member, arg0 string
	for _, kv := range kvs {
		switch kv.key {
		case "member":
			member = kv.value
		case "arg0":
			arg0 = kv.value
		}
	}
	if member != "NameOwnerChanged" {
		return ""
	}
	return arg0
}

// signal is a message the keeper makes up, as match rules see it.
type signal struct {
	sender, iface, member, path, dest string
	args                              []string
}

// matches reports whether rule selects the signal s. A key the keeper does
// not evaluate makes the rule not match: an app gets no signal it did not
// clearly ask for.
func matches(rule string, s *signal) bool {
	kvs, err := parseMatch(rule)
	if err != nil {
		return false
	}
	for _, kv := range kvs {
		v := kv.value
		var ok bool
		switch kv.key {
		case "type":
			ok = v == "signal"
		case "sender":
			ok = v == s.sender
		case "interface":
			ok = v == s.iface
		case "member":
			ok = v == s.member
		case "path":
			ok = v == s.path
		case "path_namespace":
			ok = v == "/" || s.path == v || strings.HasPrefix(s.path, v+"/")
		case "destination":
			ok = v == s.dest
		case "eavesdrop":
			ok = true
		case "arg0namespace":
			ok = len(s.args) > 0 && (s.args[0] == v || strings.HasPrefix(s.args[0], v+"."))
		default:
			n, isArg := strings.CutPrefix(kv.key, "arg")
			isPath := false
			if p, cut := strings.CutSuffix(n, "path"); cut {
				n, isPath = p, true
			}
			i, err := strconv.Atoi(n)
			if !isArg || err != nil || i < 0 || i >= len(s.args) {
				return false
			}
			a := s.args[i]
			if isPath {
				ok = a == v || strings.HasSuffix(v, "/") && strings.HasPrefix(a, v) ||
					strings.HasSuffix(a, "/") && strings.HasPrefix(v, a)
			} else {
				ok = a == v
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
