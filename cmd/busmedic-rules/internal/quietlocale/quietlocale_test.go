package quietlocale

import "testing"

func TestLanguage(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // "" for nothing to set
	}{
		{"C.UTF-8", map[string]string{"LANG": "C.UTF-8"}, "en"},
		{"C.utf8", map[string]string{"LANG": "C.utf8"}, "en"},
		{"POSIX with a modifier", map[string]string{"LANG": "POSIX@euro"}, "en"},
		{"plain C", map[string]string{"LANG": "C"}, ""},
		{"plain POSIX", map[string]string{"LANG": "POSIX"}, ""},
		{"nothing set", map[string]string{}, ""},
		{"a language", map[string]string{"LANG": "fr_FR.UTF-8"}, ""},
		{"LANGUAGE already set", map[string]string{"LANG": "C.UTF-8", "LANGUAGE": "fr"}, ""},
		{"LC_ALL first", map[string]string{"LC_ALL": "C.UTF-8", "LANG": "fr_FR.UTF-8"}, "en"},
		{"LC_ALL a language", map[string]string{"LC_ALL": "de_DE.UTF-8", "LANG": "C.UTF-8"}, ""},
		{"LC_MESSAGES before LANG", map[string]string{"LC_MESSAGES": "C.UTF-8", "LANG": "de_DE.UTF-8"}, "en"},
		{"LC_ALL plain C", map[string]string{"LC_ALL": "C", "LC_MESSAGES": "C.UTF-8"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Language(func(k string) string { return tc.env[k] })
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("Language = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}
