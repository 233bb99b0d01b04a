package appdb

import (
	"errors"
	"testing"
)

// FuzzLoad checks that the loader never panics and returns either a set or
// Errors naming the file.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(goodFile))
	f.Add([]byte(userFile))
	f.Add([]byte("version = 1\napp = [{ id = \"a\", exe = \"/bin/a\", env = { A = \"b\" } }]\n"))
	f.Add([]byte("[[app]]\nid = \"x\"\n[app.env]\nA = 1\n[[app.sub]]\n[[app]]\n"))
	f.Add([]byte("a.b.c = 1\n[a.d]\n[[e]]\n[[e.f]]\nx = [[1], {y = 2}]\n"))
	f.Add([]byte("[settings]\nidle_minutes = 99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse("fuzz.toml", data)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not Errors: %v", err)
			}
			for _, e := range es {
				if e.File != "fuzz.toml" || e.Warning {
					t.Fatalf("bad Error %+v", e)
				}
			}
			return
		}
		if set == nil {
			t.Fatal("no set and no error")
		}
		for _, r := range set.Rules() {
			// Every loaded rule survives formatting and parsing again.
			if err := r.Validate(); err != nil {
				t.Fatalf("rule %+v does not round-trip: %v", r, err)
			}
		}
	})
}
