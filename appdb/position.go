package appdb

import (
	"fmt"
	"sort"

	"github.com/pelletier/go-toml/v2/unstable"
)

// positions maps the keys of a TOML document to their lines. A key is named
// by its path: "version", "settings.idle_minutes", "app[2].grace",
// "app[2].env.HOME". Elements of arrays of tables get an index, as in
// "app[2]", and are mapped to the line of their header.
type positions struct {
	lineStarts []int
	lines      map[string]int
	headers    []header
}

// header is a [table] or [[array table]] line of the document.
type header struct {
	path  string // resolved path, such as "settings" or "app[3]"
	array bool   // [[...]]
	start int    // offset of the start of the header's line
}

func (ps *positions) line(path string) int {
	return ps.lines[path]
}

// lineOf returns the 1-based line of a byte offset.
func (ps *positions) lineOf(offset int) int {
	return sort.Search(len(ps.lineStarts), func(i int) bool { return ps.lineStarts[i] > offset })
}

func (ps *positions) set(path string, offset int) {
	if _, ok := ps.lines[path]; !ok {
		ps.lines[path] = ps.lineOf(offset)
	}
}

func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

func indexPath(base string, i int) string {
	return fmt.Sprintf("%s[%d]", base, i)
}

// indexPositions walks the document with go-toml's unstable parser. It must
// only be given documents that toml.Unmarshal accepted: it relies on the
// decoder having checked TOML's rules about redefinitions.
func indexPositions(data []byte) *positions {
	ps := &positions{lines: map[string]int{}, lineStarts: []int{0}}
	for i, c := range data {
		if c == '\n' {
			ps.lineStarts = append(ps.lineStarts, i+1)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	arrays := map[string]int{} // path of an array of tables → elements so far
	current := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			keys := keyParts(e)
			if len(keys) == 0 {
				continue
			}
			path := ""
			for _, k := range keys[:len(keys)-1] {
				path = joinPath(path, string(k.Data))
				if n := arrays[path]; n > 0 {
					path = indexPath(path, n-1)
				}
			}
			last := keys[len(keys)-1]
			path = joinPath(path, string(last.Data))
			if e.Kind == unstable.ArrayTable {
				n := arrays[path]
				arrays[path] = n + 1
				path = indexPath(path, n)
			}
			off := int(last.Raw.Offset)
			ps.set(path, off)
			ps.headers = append(ps.headers, header{
				path:  path,
				array: e.Kind == unstable.ArrayTable,
				start: ps.lineStarts[ps.lineOf(off)-1],
			})
			current = path
		case unstable.KeyValue:
			ps.keyValue(current, e)
		}
	}
	return ps
}

// keyParts returns the key nodes of a table header or key-value.
func keyParts(n *unstable.Node) []*unstable.Node {
	var out []*unstable.Node
	it := n.Key()
	for it.Next() {
		out = append(out, it.Node())
	}
	return out
}

func (ps *positions) keyValue(base string, kv *unstable.Node) {
	keys := keyParts(kv)
	if len(keys) == 0 {
		return
	}
	path := base
	for _, k := range keys {
		path = joinPath(path, string(k.Data))
		ps.set(path, int(k.Raw.Offset))
	}
	ps.value(path, kv.Value(), ps.lines[path])
}

func (ps *positions) value(path string, v *unstable.Node, line int) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				ps.keyValue(path, c)
			}
		}
	case unstable.Array:
		i := 0
		it := v.Children()
		for it.Next() {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			elem := indexPath(path, i)
			l := line
			if c.Raw.Length > 0 {
				l = ps.lineOf(int(c.Raw.Offset))
			}
			if _, ok := ps.lines[elem]; !ok {
				ps.lines[elem] = l
			}
			ps.value(elem, c, l)
			i++
		}
	}
}
