package appdb

import (
	"slices"
	"strings"
)

// matchKeys are the keys that recognise an app, in the order Match tries
// them: a rule that matches by an earlier key wins over one that matches
// by a later key, whatever their order in the files.
var matchKeys = []string{"names", "exe", "argv0", "cmdline"}

// sameMatch reports what of key rules a and b share: the first bus name
// both list, or the exe, argv0 or cmdline pattern both give; "" if none.
func sameMatch(key string, a, b Rule) string {
	switch key {
	case "names":
		for _, n := range b.Names {
			if slices.Contains(a.Names, n) {
				return n
			}
		}
	case "exe":
		if a.Exe != "" && a.Exe == b.Exe {
			return a.Exe
		}
	case "argv0":
		if a.Argv0 != "" && a.Argv0 == b.Argv0 {
			return a.Argv0
		}
	case "cmdline":
		if a.Cmdline != "" && a.Cmdline == b.Cmdline {
			return a.Cmdline
		}
	}
	return ""
}

// busesMeet reports whether rules for buses a and b can match the same
// peer: they watch a bus in common.
func busesMeet(a, b Bus) bool {
	return a == b || a == BusBoth || b == BusBoth
}

// warnOverlaps warns about the enabled rules of the file that give the
// same bus name, exe, argv0 or cmdline as an enabled rule before them on a
// bus in common: Match takes the first, so for what they share the later
// one never applies. paths are the rules' table paths ("app[2]"), for the
// line of the key.
func (d *document) warnOverlaps(paths []string) {
	for j, b := range d.rules {
		if !b.Enabled {
			continue
		}
		for k, key := range matchKeys {
			for _, a := range d.rules[:j] {
				shared := sameMatch(key, a, b)
				if !a.Enabled || !busesMeet(a.Bus, b.Bus) || shared == "" {
					continue
				}
				line := d.pos.line(joinPath(paths[j], key))
				if line == 0 {
					line = b.Line
				}
				d.problem(true, line, b.ID, key, "%q is also app %q's (line %d), which comes first: %s",
					shared, a.ID, a.Line, onlyThrough(b, k, key))
				break
			}
		}
	}
}

// onlyThrough says what becomes of rule r for the processes that its key
// (matchKeys[k]) shares with an earlier rule: r applies to them only
// through a key Match tries before, if r has one.
func onlyThrough(r Rule, k int, key string) string {
	whom := map[string]string{"names": "its owner", "exe": "that program", "argv0": "those processes", "cmdline": "those processes"}[key]
	var before []string
	for _, earlier := range matchKeys[:k] {
		if sameMatch(earlier, r, r) != "" {
			before = append(before, earlier)
		}
	}
	if len(before) == 0 {
		return "this rule never applies to " + whom
	}
	return "this rule applies to " + whom + " only through its " + strings.Join(before, " or ")
}
