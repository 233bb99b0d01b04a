package appdb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a helper process (see TestMain).
const helperEnv = "BUSMEDIC_APPDB_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "save-loop" {
		saveLoop(os.Args[len(os.Args)-1])
		return
	}
	os.Exit(m.Run())
}

// saveLoop saves two versions of a rules file in turn, forever, and prints a
// line after each save. TestAtomicSaveSurvivesKill kills it.
func saveLoop(path string) {
	for i := 0; ; i++ {
		f, err := OpenFile(path)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		r := NewRule("writer")
		r.Names = []string{"org.example.Writer"}
		r.Name = strings.Repeat("x", 1+(i%2)*20000) // the two versions differ in size
		if err := f.AddOrReplace(r); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		if err := f.Save(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("saved", i)
	}
}

const userFile = `# My rules. Keep this comment.
version = 1

[settings]
idle_minutes = 7 # and this one

# dunst: the notification daemon
[[app]]
id = "dunst"
names = ["org.freedesktop.Notifications"]
grace = "3s" # inline comment

# the panel
[[app]]
id = "panel"
exe = "/usr/bin/xfce4-panel"
[app.env]
LANG = "C"

# trailing comment
`

func TestSaveUnchangedRoundTrip(t *testing.T) {
	p := writeRules(t, t.TempDir(), userFile)
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != userFile {
		t.Errorf("saving what was loaded changed the file:\n%s", got)
	}
	if _, err := os.Stat(p + ".bak"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an unchanged save made a .bak: %v", err)
	}
}

func TestEditKeepsTheRest(t *testing.T) {
	p := writeRules(t, t.TempDir(), userFile)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := f.Lookup("dunst")
	d.Grace = 5 * time.Second
	if err := f.AddOrReplace(d); err != nil {
		t.Fatal(err)
	}
	n := NewRule("new")
	n.Exe = "/usr/bin/new"
	if err := f.AddOrReplace(n); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.Remove("panel"); !ok || err != nil {
		t.Fatalf("Remove = %v, %v", ok, err)
	}
	if ok, _ := f.Remove("panel"); ok {
		t.Error("second Remove found the rule")
	}
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	want := `# My rules. Keep this comment.
version = 1

[settings]
idle_minutes = 7 # and this one

# dunst: the notification daemon
[[app]]
id = "dunst"
names = ["org.freedesktop.Notifications"]
action = "relaunch"
grace = "5s"

# trailing comment

[[app]]
id = "new"
exe = "/usr/bin/new"
action = "relaunch"
`
	got, _ := os.ReadFile(p)
	if string(got) != want {
		t.Errorf("after edits:\n%s\nwant:\n%s", got, want)
	}
	bak, _ := os.ReadFile(p + ".bak")
	if string(bak) != userFile {
		t.Errorf(".bak holds:\n%s\nwant the previous version", bak)
	}
	for _, name := range []string{p, p + ".bak"} {
		if fi, _ := os.Stat(name); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %04o, want the original 0644", name, fi.Mode().Perm())
		}
	}
	set, err := Load(Paths{User: p})
	if err != nil {
		t.Fatal(err)
	}
	if set.Settings().IdleMinutes != 7 || len(set.Rules()) != 2 {
		t.Errorf("reloaded: %+v %v", set.Settings(), set.Rules())
	}
}

func TestAddToNewFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", fileName)
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRule("a")
	r.Names = []string{"org.example.A"}
	if err := f.AddOrReplace(r); err != nil {
		t.Fatal(err)
	}
	bad := NewRule("b") // no matcher
	if err := f.AddOrReplace(bad); err == nil || !strings.Contains(err.Error(), "no matcher") {
		t.Errorf("adding an invalid rule: %v", err)
	}
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new file: %v, mode %v", err, fi)
	}
	set, err := CheckFile(p)
	if err != nil || len(set.Rules()) != 1 {
		t.Fatalf("CheckFile = %v, %v", set, err)
	}
	if !strings.HasPrefix(string(f.Bytes()), fileHeader) {
		t.Errorf("new file lacks the header:\n%s", f.Bytes())
	}
}

func TestEditInlineApps(t *testing.T) {
	p := writeRules(t, t.TempDir(), "version = 1\napp = [{ id = \"a\", exe = \"/bin/a\" }, { id = \"b\", exe = \"/bin/b\" }]\n")
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Remove("a"); err != nil {
		t.Fatal(err)
	}
	r := NewRule("c")
	r.Exe = "/bin/c"
	if err := f.AddOrReplace(r); err != nil {
		t.Fatal(err)
	}
	set, err := Parse("x", f.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if rs := set.Rules(); len(rs) != 2 || rs[0].ID != "b" || rs[1].ID != "c" {
		t.Errorf("rules = %v", rs)
	}
}

func TestOpenRefusesBrokenFile(t *testing.T) {
	p := writeRules(t, t.TempDir(), "[[app]]\nid = \"a\"\n")
	if _, err := OpenFile(p); err == nil {
		t.Fatal("OpenFile of an invalid file succeeded")
	}
}

func TestSaveConflict(t *testing.T) {
	p := writeRules(t, t.TempDir(), userFile)
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Remove("dunst"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(userFile+"\n# edited elsewhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(); !errors.Is(err, ErrConflict) {
		t.Fatalf("Save after an outside edit = %v, want ErrConflict", err)
	}
}

// TestAtomicSaveSurvivesKill kills a process that saves in a loop, at
// arbitrary points of a save, and checks that the file is always one of the
// two versions in full.
func TestAtomicSaveSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts helper processes")
	}
	p := writeRules(t, t.TempDir(), "version = 1\n")
	valid := func(name string) {
		t.Helper()
		set, err := CheckFile(name)
		if err != nil {
			t.Fatalf("after a kill, %s does not load: %v", name, err)
		}
		if r, ok := set.Lookup("writer"); ok && len(r.Name) != 1 && len(r.Name) != 20001 {
			t.Fatalf("after a kill, %s holds a name of %d bytes", name, len(r.Name))
		}
	}
	for round := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^$", p)
		cmd.Env = append(os.Environ(), helperEnv+"=save-loop")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		for range 3 + round*5 { // kill at a different point each round
			if !lines.Scan() {
				break
			}
			if l := lines.Text(); !strings.HasPrefix(l, "saved") {
				t.Fatalf("helper: %s", l)
			}
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		valid(p)
		valid(p + ".bak")
	}
	data, _ := os.ReadFile(p)
	if !bytes.Contains(data, []byte(`id = "writer"`)) {
		t.Errorf("the helper never saved:\n%s", data)
	}
}
