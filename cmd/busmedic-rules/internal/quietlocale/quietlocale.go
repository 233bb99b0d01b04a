// Package quietlocale keeps Fyne from logging "Fyne error: Error parsing
// user locale C" (three lines, at every start) under the C locale with a
// codeset, such as Debian's default C.UTF-8. busmedic-rules imports it for
// its init, the one init with a side effect in busmedic, because Fyne
// reads the locale in its own package init (lang's built-in translations),
// before main runs.
//
// Its init must run before fyne.io/fyne/v2/lang's: Go initializes packages
// in the order of their import paths as far as their imports allow, and
// this one imports nothing of Fyne's and sorts first ("busmedic/…" before
// "fyne.io/…"). The test of busmedic-rules that starts the program under
// LANG=C.UTF-8 checks that nothing is logged.
package quietlocale

import (
	"os"
	"strings"
)

func init() {
	if lang, ok := Language(os.Getenv); ok {
		os.Setenv("LANGUAGE", lang)
	}
}

// Language returns the LANGUAGE that keeps Fyne's locale lookup quiet, or
// false when nothing needs setting.
//
// Fyne takes the user's language from go-locale, which reads the first of
// LC_ALL, LC_MESSAGES and LANG that is set, takes exactly "C" and "POSIX"
// as no language at all, and otherwise prefers LANGUAGE when it is set.
// "C.UTF-8" is neither: its language part "C" goes to the BCP 47 parser,
// which refuses it, and Fyne falls back to English. The C locale's
// messages are English, so LANGUAGE=en says what the user's locale means,
// in the one variable go-locale reads first; nothing else changes (the
// editor starts no programs that would inherit it).
func Language(getenv func(string) string) (string, bool) {
	if getenv("LANGUAGE") != "" {
		return "", false
	}
	loc := ""
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if loc = getenv(k); loc != "" {
			break
		}
	}
	if loc == "C" || loc == "POSIX" {
		return "", false
	}
	lang, _, _ := strings.Cut(loc, ".")
	lang, _, _ = strings.Cut(lang, "@")
	if lang == "C" || lang == "POSIX" {
		return "en", true
	}
	return "", false
}
