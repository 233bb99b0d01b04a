package appdb

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mkfile writes an executable file with mode perm (chmod, so that the
// umask does not change it).
func mkfile(t *testing.T, path string, perm fs.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, perm)
	return path
}

func mkdir(t *testing.T, path string, perm fs.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(path, 0o700); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, perm)
	return path
}

func chmod(t *testing.T, path string, perm fs.FileMode) {
	t.Helper()
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

// unsafeAt checks that err is an *UnsafeError blaming path.
func unsafeAt(t *testing.T, what string, err error, path, fix string) {
	t.Helper()
	var ue *UnsafeError
	if !errors.As(err, &ue) {
		t.Errorf("%s: CheckPath = %v, want an *UnsafeError blaming %s", what, err, path)
		return
	}
	if ue.Path != path || ue.Fix != fix {
		t.Errorf("%s: blames %s (fix %q), want %s (fix %q): %v", what, ue.Path, ue.Fix, path, fix, err)
	}
}

func TestCheckPath(t *testing.T) {
	// t.TempDir is under $TMPDIR, usually /tmp: writable by everyone, with
	// the sticky bit, and owned by root. That must not count against the
	// files of ours in it.
	if st, err := os.Stat(os.TempDir()); err == nil {
		t.Logf("%s: mode %v", os.TempDir(), st.Mode())
	}
	root := t.TempDir()
	safe := mkfile(t, filepath.Join(root, "safe", "prog"), 0o755)
	if err := CheckPath(safe); err != nil {
		t.Errorf("0755 file of ours in a 0700 directory: %v", err)
	}

	ww := mkfile(t, filepath.Join(root, "ww", "prog"), 0o777)
	unsafeAt(t, "world-writable file", CheckPath(ww), ww, "chmod go-w "+ww)
	gw := mkfile(t, filepath.Join(root, "gw", "prog"), 0o775)
	unsafeAt(t, "group-writable file", CheckPath(gw), gw, "chmod go-w "+gw)

	open := mkdir(t, filepath.Join(root, "open"), 0o777)
	inOpen := mkfile(t, filepath.Join(open, "deep", "prog"), 0o755)
	unsafeAt(t, "directory above writable by others", CheckPath(inOpen), open, "chmod go-w "+open)
	err := CheckPath(inOpen)
	if want := inOpen + ": directory " + open + " is writable by group or others (mode 0777) without the sticky bit; fix with: chmod go-w " + open; err == nil || err.Error() != want {
		t.Errorf("message:\n got %v\nwant %s", err, want)
	}
	group := mkdir(t, filepath.Join(root, "group"), 0o770)
	unsafeAt(t, "group-writable directory", CheckPath(mkfile(t, filepath.Join(group, "prog"), 0o755)), group, "chmod go-w "+group)

	// A sticky directory like /tmp, owned by us (or root), is fine.
	sticky := mkdir(t, filepath.Join(root, "sticky"), fs.ModeSticky|0o777)
	if err := CheckPath(mkfile(t, filepath.Join(sticky, "prog"), 0o755)); err != nil {
		t.Errorf("file of ours in a sticky directory: %v", err)
	}

	// Symlinks: the directory that holds one could swap it.
	link := filepath.Join(open, "link")
	if err := os.Symlink(safe, link); err != nil {
		t.Fatal(err)
	}
	unsafeAt(t, "symlink in a directory writable by others", CheckPath(link), open, "chmod go-w "+open)
	// A safe symlink to a file in an unsafe place.
	toOpen := filepath.Join(root, "safe", "to-open")
	if err := os.Symlink("../open/deep/prog", toOpen); err != nil {
		t.Fatal(err)
	}
	unsafeAt(t, "symlink to a file under a directory writable by others", CheckPath(toOpen), open, "chmod go-w "+open)
	// A safe symlink to a safe file.
	toSafe := filepath.Join(root, "safe", "to-safe")
	if err := os.Symlink("prog", toSafe); err != nil {
		t.Fatal(err)
	}
	if err := CheckPath(toSafe); err != nil {
		t.Errorf("symlink to a safe file: %v", err)
	}
	loop := filepath.Join(root, "safe", "loop")
	if err := os.Symlink("loop", loop); err != nil {
		t.Fatal(err)
	}
	if err := CheckPath(loop); err == nil || errors.As(err, new(*UnsafeError)) {
		t.Errorf("symlink loop: %v, want an error that is not *UnsafeError", err)
	}

	if err := CheckPath(filepath.Join(root, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	if err := CheckPath("relative/prog"); err == nil {
		t.Error("relative path accepted")
	}
	if err := CheckPath("/bin/sh"); err != nil {
		t.Errorf("/bin/sh: %v", err)
	}
}

// Files and directories of another user are unsafe, also in a sticky
// directory. Only root can make them.
func TestCheckPathOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
	const other = 4242
	root := t.TempDir()
	theirs := mkfile(t, filepath.Join(root, "theirs"), 0o755)
	if err := os.Chown(theirs, other, other); err != nil {
		t.Fatal(err)
	}
	unsafeAt(t, "file of another user", CheckPath(theirs), theirs, "as root, chown root "+theirs+"; or use a copy of your own")

	sticky := mkdir(t, filepath.Join(root, "sticky"), fs.ModeSticky|0o777)
	if err := os.Chown(sticky, other, other); err != nil {
		t.Fatal(err)
	}
	prog := mkfile(t, filepath.Join(sticky, "prog"), 0o755)
	var ue *UnsafeError
	if err := CheckPath(prog); !errors.As(err, &ue) || ue.Path != sticky || !strings.Contains(ue.Problem, "owned by uid 4242") {
		t.Errorf("sticky directory of another user: %v", err)
	}

	tmp := mkdir(t, filepath.Join(root, "tmp"), fs.ModeSticky|0o777)
	planted := filepath.Join(tmp, "planted")
	if err := os.Symlink(prog, planted); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(planted, other, other); err != nil {
		t.Fatal(err)
	}
	unsafeAt(t, "symlink of another user in a sticky directory", CheckPath(planted), planted, "as root, chown root "+planted+"; or use a copy of your own")
}

// busmedic rules check (CheckFile) warns about programs and scripts that
// others could change, with file, line, key and the fix; busmedic would
// refuse to run them.
func TestCheckFileWarnsUnsafePrograms(t *testing.T) {
	root := t.TempDir()
	bin := mkdir(t, filepath.Join(root, "bin"), 0o700)
	ww := mkfile(t, filepath.Join(bin, "ww-app"), 0o777)
	script := mkfile(t, filepath.Join(bin, "tray.py"), 0o666)
	shellScript := mkfile(t, filepath.Join(bin, "start.sh"), 0o777)
	open := mkdir(t, filepath.Join(root, "open"), 0o777)
	inOpen := mkfile(t, filepath.Join(open, "hook"), 0o755)
	mkfile(t, filepath.Join(bin, "python3"), 0o755) // an interpreter; never run
	safe := mkfile(t, filepath.Join(bin, "safe"), 0o755)
	t.Setenv("PATH", bin+":/usr/bin:/bin")

	path := writeRules(t, filepath.Join(root, "conf"), `
[[app]]
id = "a"
exe = "/usr/bin/a"
exec = ["`+ww+`", "--flag"]

[[app]]
id = "b"
exe = "/usr/bin/b"
exec = ["python3", "-u", "`+script+`"]

[[app]]
id = "c"
exe = "/usr/bin/c"
shell = true
exec = ["cd /; exec start.sh >>$HOME/log 2>&1"]

[[app]]
id = "d"
exe = "/usr/bin/d"
action = "hook"
hook = ["`+inOpen+`"]

[[app]]
id = "fine"
exe = "/usr/bin/fine"
exec = ["python3", "`+safe+`"]
`)
	set, err := CheckFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range set.Warnings() {
		got = append(got, w.Error())
	}
	want := []string{
		path + `:5: warning: app "a": key exec: program "` + ww + `": ` + ww + " is writable by group or others (mode 0777): busmedic will refuse to run it; fix with: chmod go-w " + ww,
		path + `:10: warning: app "b": key exec: script "` + script + `" of python3: ` + script + " is writable by group or others (mode 0666): busmedic will refuse to run it; fix with: chmod go-w " + script,
		path + `:16: warning: app "c": key exec: program "start.sh": ` + shellScript + " is writable by group or others (mode 0777): busmedic will refuse to run it; fix with: chmod go-w " + shellScript,
		path + `:22: warning: app "d": key hook: program "` + inOpen + `": ` + inOpen + ": directory " + open + " is writable by group or others (mode 0777) without the sticky bit: busmedic will refuse to run it; fix with: chmod go-w " + open,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A rules file that is safe itself, in a directory others may write, or
// reached through a symlink to such a place, loads with a warning.
func TestCheckFileWarnsUnsafePlace(t *testing.T) {
	root := t.TempDir()
	open := mkdir(t, filepath.Join(root, "open"), 0o777)
	inOpen := writeRules(t, filepath.Join(open, "busmedic"), "[[app]]\nid = \"a\"\nexe = \"/usr/bin/a\"\n")
	set, err := CheckFile(inOpen)
	if err != nil {
		t.Fatal(err)
	}
	want := inOpen + ": warning: directory " + open + " is writable by group or others (mode 0777) without the sticky bit: others could replace the rules, and busmedic runs the commands in them; fix with: chmod go-w " + open
	if w := set.Warnings(); len(w) != 1 || w[0].Error() != want {
		t.Errorf("warnings %v,\nwant %s", w, want)
	}

	// The user's file is a symlink to the file in the open directory.
	conf := mkdir(t, filepath.Join(root, "home", "busmedic"), 0o700)
	link := filepath.Join(conf, fileName)
	if err := os.Symlink(inOpen, link); err != nil {
		t.Fatal(err)
	}
	set, err = Load(Paths{User: link})
	if err != nil {
		t.Fatal(err)
	}
	want = link + ": warning: the file is a symlink to " + inOpen + ", and directory " + open + " is writable by group or others (mode 0777) without the sticky bit: others could replace the rules, and busmedic runs the commands in them; fix with: chmod go-w " + open
	if w := set.Warnings(); len(w) != 1 || w[0].Error() != want {
		t.Errorf("warnings %v,\nwant %s", w, want)
	}

	// A symlink to a file others may write is refused, naming the target.
	chmod(t, inOpen, 0o666)
	_, err = Load(Paths{User: link})
	want = link + ": refusing to load: the file is a symlink to " + inOpen + ", which is writable by group or others (mode 0666) and busmedic runs the commands in it; fix with: chmod go-w " + inOpen
	if !errors.Is(err, ErrUnsafe) || err.Error() != want {
		t.Errorf("Load = %v,\nwant %s", err, want)
	}

	// In a sticky directory, as /tmp, or a safe one: no warning.
	sticky := mkdir(t, filepath.Join(root, "sticky"), fs.ModeSticky|0o777)
	for _, dir := range []string{sticky, conf} {
		p := writeRules(t, filepath.Join(dir, "x"), "[[app]]\nid = \"a\"\nexe = \"/usr/bin/a\"\n")
		if set, err := CheckFile(p); err != nil || len(set.Warnings()) != 0 {
			t.Errorf("%s: %v, warnings %v", p, err, set.Warnings())
		}
	}
}
