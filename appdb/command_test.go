package appdb

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// CommandFiles finds the program, the scripts handed to interpreters, and
// what a shell command line runs; real files in a temporary PATH, none of
// them run.
func TestCommandFiles(t *testing.T) {
	root := t.TempDir()
	bin := mkdir(t, filepath.Join(root, "bin"), 0o755)
	for _, p := range []string{"python3", "perl", "sh", "bash", "env", "nice", "tool", "other", "node", "sub", "nohup"} {
		mkfile(t, filepath.Join(bin, p), 0o755)
	}
	work := mkdir(t, filepath.Join(root, "work"), 0o755)
	for _, f := range []string{"x.py", "x.pl", "x.sh", "lib.sh", "hook.js", "app.js", "data"} {
		mkfile(t, filepath.Join(work, f), 0o644)
	}
	mkfile(t, filepath.Join(bin, "plain"), 0o644)
	home := mkdir(t, filepath.Join(root, "home"), 0o755)
	mkfile(t, filepath.Join(home, "app"), 0o755)
	env := []string{"PATH=" + bin + ":relative", "HOME=" + home, "APP=" + home + "/app"}

	b := func(name string) string { return filepath.Join(bin, name) }
	w := func(name string) string { return filepath.Join(work, name) }
	for _, tc := range []struct {
		argv []string
		want []string // paths; a script is written "path (interp)"
	}{
		{[]string{"tool", "--flag", "x.py"}, []string{b("tool")}},
		{[]string{"python3", "-u", "x.py", "data"}, []string{b("python3"), w("x.py") + " (python3)"}},
		{[]string{"python3", "-W", "ignore", w("x.py")}, []string{b("python3"), w("x.py") + " (python3)"}},
		{[]string{"python3", "-c", "import x", "x.py"}, []string{b("python3")}},
		{[]string{"python3", "-m", "x", "x.py"}, []string{b("python3")}},
		{[]string{"perl", "-ne", "print", "x.pl"}, []string{b("perl")}},
		{[]string{"perl", "-I", "lib", "x.pl"}, []string{b("perl"), w("x.pl") + " (perl)"}},
		{[]string{"node", "-r", "./hook.js", "app.js"}, []string{b("node"), w("hook.js") + " (node)", w("app.js") + " (node)"}},
		{[]string{"sh", "x.sh"}, []string{b("sh"), w("x.sh") + " (sh)"}},
		{[]string{"sh", "-e", "--", "x.sh"}, []string{b("sh"), w("x.sh") + " (sh)"}},
		{[]string{"env", "A=1", "nice", "-n", "5", "python3", "x.py"}, []string{b("env"), b("nice"), b("python3"), w("x.py") + " (python3)"}},
		{[]string{"plain"}, nil}, // not executable: not found
		{[]string{"/bin/sh", "-c", "$CMD"}, []string{"/bin/sh"}},
		// A shell command line, as shell = true runs it.
		{[]string{"/bin/sh", "-c", `FOO=1 exec tool --x >>$HOME/log 2>&1; . ./lib.sh && python3 'x.py' | other # evil`},
			[]string{"/bin/sh", b("tool"), w("lib.sh") + " (sh)", b("python3"), w("x.py") + " (python3)", b("other")}},
		{[]string{"/bin/sh", "-c", `if true; then "$APP" --now; fi; echo "$(sub)" ` + "`nohup`"},
			[]string{"/bin/sh", home + "/app", b("sub"), b("nohup")}},
		{[]string{"/bin/sh", "-c", "~/app\ncat <<EOF\nevil\nEOF\nbash -c 'sh x.sh'"},
			[]string{"/bin/sh", home + "/app", b("bash"), b("sh"), w("x.sh") + " (sh)"}},
		{[]string{"/bin/sh", "-c", "for f in a b; do tool $f; done; case x in y) other;; esac"},
			[]string{"/bin/sh", b("tool"), b("other")}},
	} {
		var got []string
		for _, f := range CommandFiles(tc.argv, work, env) {
			s := f.Path
			if f.Interpreter != "" {
				s += " (" + f.Interpreter + ")"
			}
			got = append(got, s)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("CommandFiles(%q):\n got %q\nwant %q", tc.argv, got, tc.want)
		}
	}
}

// Whatever the command line, CommandFiles returns (nesting is bounded).
func TestCommandFilesBounded(t *testing.T) {
	line := strings.Repeat("sh -c '", 50) + strings.Repeat("$(", 100) + "`"
	CommandFiles([]string{"/bin/sh", "-c", line}, "/", []string{"PATH=/usr/bin:/bin"})
	CommandFiles([]string{"env", "env", "env", "env", "env", "env", "env", "env", "env", "env", "env"}, "", os.Environ())
}

// No shell command line makes CommandFiles panic or loop.
func FuzzCommandFiles(f *testing.F) {
	for _, s := range []string{"a; b && c | d", "\"$(x)\" '${y}' `z`", "cat <<'E'\nx\nE\n", "${", "$((", "'", `"`, "\\", "~x ~/y", "a>&2 2>>b <c", "eval 'sh -c \"x\"'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		CommandFiles([]string{"/bin/sh", "-c", line}, "/", []string{"PATH=/usr/bin:/bin", "HOME=/"})
	})
}

// TestLazyRegexps compiles every expression the package compiles at first
// use, so that a broken one fails here, not in the daemon.
func TestLazyRegexps(t *testing.T) {
	for _, re := range []func() *regexp.Regexp{shellRE, interpRE, assignRE, nameRE, interpreterRE, fdPathRE, idRE, envNameRE} {
		if re() == nil {
			t.Error("no expression")
		}
	}
	if len(inline()) == 0 {
		t.Error("no inline expressions")
	}
}
