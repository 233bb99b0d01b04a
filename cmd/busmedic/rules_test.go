package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adrg/xdg"

	"busmedic/appdb"
	"busmedic/watcher/bustest"
)

// rulesEnv points the XDG directories at temporary ones and returns the user
// file and the system file paths (neither exists yet).
func rulesEnv(t *testing.T) (user, system string) {
	t.Helper()
	root := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(root, "home"))
	t.Setenv("XDG_CONFIG_DIRS", filepath.Join(root, "etc"))
	t.Setenv("BUSMEDIC_CONFIG", "")
	// No bus, unless the test starts one: add-from-pid asks the buses.
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(root, "no-session-bus"))
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+filepath.Join(root, "no-system-bus"))
	xdg.Reload()
	t.Cleanup(xdg.Reload)
	return filepath.Join(root, "home", "busmedic", "apps.toml"), filepath.Join(root, "etc", "busmedic", "apps.toml")
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func rules(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"rules"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

const systemRules = `version = 1

[[app]]
id = "nm-applet"
bus = "system"
names = ["org.freedesktop.network-manager-applet"]
exe = "/usr/bin/nm-applet"
after = ["org.freedesktop.NetworkManager"]

[[app]]
id = "panel"
exe = "/usr/bin/xfce4-panel"
`

const userRules = `version = 1

[[app]]
id = "dunst"
names = ["org.freedesktop.Notifications"]
grace = "3s"

[[app]]
id = "panel"
enabled = false
`

func TestRulesPath(t *testing.T) {
	user, system := rulesEnv(t)
	if code, out, _ := rules(t, "path"); code != 0 || out != user+"\n" {
		t.Errorf("path = %d %q, want %q", code, out, user)
	}
	code, out, _ := rules(t, "path", "--all")
	if code != 0 || !strings.Contains(out, "user\t"+user+" (not present)") || !strings.Contains(out, "system\t"+system) {
		t.Errorf("path --all = %d\n%s", code, out)
	}
	if _, out, _ := rules(t, "--config", "/x/y.toml", "path"); out != "/x/y.toml\n" {
		t.Errorf("--config before the command: %q", out)
	}
	if _, out, _ := rules(t, "path", "--config=/x/z.toml"); out != "/x/z.toml\n" {
		t.Errorf("--config after the command: %q", out)
	}
	t.Setenv("BUSMEDIC_CONFIG", "/env/apps.toml")
	if _, out, _ := rules(t, "path"); out != "/env/apps.toml\n" {
		t.Errorf("BUSMEDIC_CONFIG: %q", out)
	}
}

func TestRulesList(t *testing.T) {
	user, system := rulesEnv(t)
	if code, out, _ := rules(t, "list"); code != 0 || !strings.Contains(out, "no rules") {
		t.Errorf("list with no files = %d %q", code, out)
	}
	writeFile(t, system, systemRules)
	writeFile(t, user, userRules)

	code, out, errOut := rules(t, "list")
	if code != 0 {
		t.Fatalf("list = %d\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("list printed:\n%s", out)
	}
	for i, want := range [][]string{
		{"ID", "BUS", "ACTION", "MATCH", "SOURCE"},
		{"dunst", "session", "relaunch", "names=org.freedesktop.Notifications", user + ":3"},
		{"panel", "session", "disabled", "-", user + ":8"},
		{"nm-applet", "system", "relaunch", "names=org.freedesktop.network-manager-applet exe=/usr/bin/nm-applet", system + ":3"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}

	code, out, _ = rules(t, "list", "--json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
		t.Fatalf("list --json = %d, %v\n%s", code, err, out)
	}
	if len(got) != 3 || got[0]["id"] != "dunst" || got[0]["grace"] != "3s" || got[1]["enabled"] != false || got[2]["bus"] != "system" {
		t.Errorf("list --json:\n%s", out)
	}

	writeFile(t, user, userRules+"\n[[app]]\nid = \"bad\"\nexe = \"rel\"\n")
	code, _, errOut = rules(t, "list")
	if code != 1 || !strings.Contains(errOut, user+":14: app \"bad\": key exe") {
		t.Errorf("list of a bad file = %d\n%s", code, errOut)
	}
}

// TestRulesListJSONFields pins the JSON of "rules list --json", which
// scripts read: the field names, their order, the durations as strings,
// and which fields an empty value leaves out.
func TestRulesListJSONFields(t *testing.T) {
	user, _ := rulesEnv(t)
	writeFile(t, user, `version = 1

[[app]]
id = "full"
name = "Full <rule> & co"
icon = "/usr/share/icons/full.png"
desktop = "full.desktop"
bus = "both"
names = ["org.example.Full"]
exe = "/usr/bin/full"
argv0 = "full*"
cmdline = "full --x*"
action = "hook"
signal = "usr1"
hook = ["/bin/true", "--again"]
exec = ["/bin/true --start"]
shell = true
env = { B = "2", A = "1" }
workdir = "/tmp"
after = ["org.example.Before"]
grace = "0s"
ready_timeout = "30s"
stop_timeout = "1500ms"
max_restarts = 3
restart_window = "1m"
enabled = false

[[app]]
id = "min"
exe = "/usr/bin/min"
`)
	code, out, errOut := rules(t, "list", "--json")
	if code != 0 {
		t.Fatalf("list --json = %d\n%s", code, errOut)
	}
	source, _ := json.Marshal(user)
	want := strings.ReplaceAll(`[
  {
    "id": "full",
    "name": "Full \u003crule\u003e \u0026 co",
    "icon": "/usr/share/icons/full.png",
    "desktop": "full.desktop",
    "bus": "both",
    "names": [
      "org.example.Full"
    ],
    "exe": "/usr/bin/full",
    "argv0": "full*",
    "cmdline": "full --x*",
    "action": "hook",
    "signal": "SIGUSR1",
    "hook": [
      "/bin/true",
      "--again"
    ],
    "exec": [
      "/bin/true --start"
    ],
    "shell": true,
    "env": {
      "A": "1",
      "B": "2"
    },
    "workdir": "/tmp",
    "after": [
      "org.example.Before"
    ],
    "grace": "0s",
    "ready_timeout": "30s",
    "stop_timeout": "1.5s",
    "max_restarts": 3,
    "restart_window": "1m0s",
    "enabled": false,
    "source": SOURCE,
    "line": 3
  },
  {
    "id": "min",
    "bus": "session",
    "exe": "/usr/bin/min",
    "action": "relaunch",
    "grace": "2s",
    "ready_timeout": "10s",
    "stop_timeout": "5s",
    "max_restarts": 5,
    "restart_window": "1m0s",
    "enabled": true,
    "source": SOURCE,
    "line": 28
  }
]
`, "SOURCE", string(source))
	if out != want {
		t.Errorf("list --json:\n%s\nwant\n%s", out, want)
	}
}

func TestRulesCheck(t *testing.T) {
	user, system := rulesEnv(t)
	if code, out, _ := rules(t, "check"); code != 0 || !strings.Contains(out, "no rules files") {
		t.Errorf("check with no files = %d %q", code, out)
	}
	writeFile(t, system, systemRules)
	writeFile(t, user, userRules)
	code, out, errOut := rules(t, "check")
	if code != 0 || out != user+": 2 rules OK\n"+system+": 2 rules OK\n" {
		t.Errorf("check = %d\n%s%s", code, out, errOut)
	}

	bad := filepath.Join(t.TempDir(), "bad.toml")
	writeFile(t, bad, "[[app]]\nid = \"x\"\ngrace = \"soon\"\nnames = [\"nodot\"]\nfoo = 1\n")
	code, out, errOut = rules(t, "check", bad)
	if code != 1 || out != "" {
		t.Errorf("check of a bad file = %d, stdout %q", code, out)
	}
	for _, want := range []string{bad + ":3: app \"x\": key grace", bad + ":4: app \"x\": key names", bad + ":5: app \"x\": key foo: unknown key"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("check output lacks %q:\n%s", want, errOut)
		}
	}

	if err := os.Chmod(user, 0o666); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = rules(t, "check", user)
	if code != 1 || !strings.Contains(errOut, user+": refusing to load") {
		t.Errorf("check of a world-writable file = %d\n%s", code, errOut)
	}
	missing := filepath.Join(t.TempDir(), "missing.toml")
	if code, out, errOut := rules(t, "check", missing); code != 1 || out != "" || errOut != missing+": no such file\n" {
		t.Errorf("check of a missing file = %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// rules check warns, with file, line, key and the fix, about programs and
// scripts others could change (busmedic would refuse to run them), about a
// rules directory others may write, and about a symlinked rules file whose
// target others could replace.
func TestRulesCheckSafety(t *testing.T) {
	user, system := rulesEnv(t)
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	ww := filepath.Join(bin, "ww-tray")
	script := filepath.Join(bin, "tray.sh")
	for _, p := range []string{ww, script} {
		writeFile(t, p, "#!/bin/sh\n")
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, user, `[[app]]
id = "tray"
names = ["org.example.Tray"]
exec = ["/bin/sh", "`+script+`"]

[[app]]
id = "panel"
names = ["org.example.Panel"]
action = "hook"
hook = ["`+ww+`", "--restart"]

[[app]]
id = "shelled"
names = ["org.example.Shelled"]
shell = true
exec = ["exec `+ww+` >/dev/null"]
`)
	userDir := filepath.Dir(user)
	if err := os.Chmod(userDir, 0o777); err != nil {
		t.Fatal(err)
	}
	// The system file is a symlink to a file in a directory others may write.
	shared := filepath.Join(root, "shared")
	target := filepath.Join(shared, "apps.toml")
	writeFile(t, target, systemRules)
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(system), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, system); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := rules(t, "check")
	if code != 0 || out != user+": 3 rules OK (4 warnings)\n"+system+": 2 rules OK (1 warning)\n" {
		t.Errorf("check = %d\n%s", code, out)
	}
	for _, want := range []string{
		user + ": warning: directory " + userDir + " is writable by group or others (mode 0777) without the sticky bit: others could replace the rules, and busmedic runs the commands in them; fix with: chmod go-w " + userDir,
		user + `:4: warning: app "tray": key exec: script "` + script + `" of sh: ` + script + " is writable by group or others (mode 0777): busmedic will refuse to run it; fix with: chmod go-w " + script,
		user + `:10: warning: app "panel": key hook: program "` + ww + `": ` + ww + " is writable by group or others (mode 0777): busmedic will refuse to run it; fix with: chmod go-w " + ww,
		user + `:16: warning: app "shelled": key exec: program "` + ww + `": ` + ww + " is writable by group or others (mode 0777): busmedic will refuse to run it; fix with: chmod go-w " + ww,
		system + ": warning: the file is a symlink to " + target + ", and directory " + shared + " is writable by group or others (mode 0777) without the sticky bit: others could replace the rules, and busmedic runs the commands in them; fix with: chmod go-w " + shared,
	} {
		if !strings.Contains(errOut, want+"\n") {
			t.Errorf("check output lacks\n%s\nin:\n%s", want, errOut)
		}
	}

	// Fixed as told: no warning.
	for _, p := range []string{userDir, shared} {
		if err := os.Chmod(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{ww, script} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errOut := rules(t, "check"); code != 0 || errOut != "" || out != user+": 3 rules OK\n"+system+": 2 rules OK\n" {
		t.Errorf("check after the fixes = %d\n%s%s", code, out, errOut)
	}
}

func TestRulesAddFromPID(t *testing.T) {
	user, _ := rulesEnv(t)
	writeFile(t, user, "# mine\nversion = 1\n")
	pid := strconv.Itoa(os.Getpid())
	code, out, errOut := rules(t, "add-from-pid", pid, "--id", "the-test", "--action", "notify")
	if code != 0 {
		t.Fatalf("add-from-pid = %d\n%s", code, errOut)
	}
	if !strings.Contains(out, `id = "the-test"`) || !strings.Contains(out, `action = "notify"`) {
		t.Errorf("add-from-pid printed:\n%s", out)
	}
	data, _ := os.ReadFile(user)
	if !strings.HasPrefix(string(data), "# mine\nversion = 1\n") || !strings.Contains(string(data), `id = "the-test"`) {
		t.Errorf("file after add:\n%s", data)
	}
	if _, err := os.Stat(user + ".bak"); err != nil {
		t.Errorf("no .bak: %v", err)
	}
	if code, _, errOut := rules(t, "add-from-pid", "--id=the-test", pid); code != 1 || !strings.Contains(errOut, "already has a rule") {
		t.Errorf("adding the same id again = %d %q", code, errOut)
	}
	if code, _, errOut := rules(t, "add-from-pid", "--id=the-test", "--replace", pid); code != 0 {
		t.Errorf("--replace = %d %q", code, errOut)
	}
	if code, out, _ := rules(t, "list"); code != 0 || !strings.Contains(out, "the-test") {
		t.Errorf("list after add = %d\n%s", code, out)
	}
	if code, _, _ := rules(t, "add-from-pid", "999999999"); code != 1 {
		t.Errorf("add-from-pid of a missing process = %d", code)
	}
}

// A rule added with the id of a system rule takes its place: add-from-pid
// says so, naming the system rule's file and line.
func TestRulesAddFromPIDShadowsSystemRule(t *testing.T) {
	_, system := rulesEnv(t)
	writeFile(t, system, "version = 1\n\n[[app]]\nid = \"the-test\"\nnames = [\"org.example.System\"]\naction = \"notify\"\n")
	code, _, errOut := rules(t, "add-from-pid", strconv.Itoa(os.Getpid()), "--id", "the-test", "--action", "notify")
	if code != 0 {
		t.Fatalf("add-from-pid = %d\n%s", code, errOut)
	}
	if want := fmt.Sprintf(`the system rule "the-test" (%s:3) has the same id: the new rule takes its place`, system); !strings.Contains(errOut, want) {
		t.Errorf("add-from-pid said:\n%s\nwant: %s", errOut, want)
	}
}

// startProcess runs name with args until the test ends, and returns its
// pid once its command line is argv: at once for the program Start ran,
// or, for a shell that execs another program, once that program has
// printed its first line (it runs then).
func startProcess(t *testing.T, argv []string, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	want := strings.Join(argv, "\x00") + "\x00"
	cmdline := func() string {
		got, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
		return string(got)
	}
	if cmdline() != want {
		line := make(chan struct{})
		go func() {
			bufio.NewReader(out).ReadString('\n')
			close(line)
		}()
		select {
		case <-line:
		case <-time.After(deadline):
		}
	}
	if got := cmdline(); got != want {
		t.Fatalf("pid %d: command line %q, want %q", cmd.Process.Pid, got, want)
	}
	return cmd.Process.Pid
}

// ruleIn returns the rule id of the user file user, and whether it is
// there.
func ruleIn(t *testing.T, user, id string) (appdb.Rule, bool) {
	t.Helper()
	set, err := appdb.CheckFile(user)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return appdb.Rule{}, false
		}
		t.Fatal(err)
	}
	return set.Lookup(id)
}

// TestAddFromPIDOnTheBuses: add-from-pid finds a testapp on a real
// session bus, and another on a real system bus, and writes rules that
// match them by the names they own there, on that bus; a process on no
// bus gets its rule with a warning, and so does one another rule matches,
// which "rules check" then warns about too.
func TestAddFromPIDOnTheBuses(t *testing.T) {
	user, _ := rulesEnv(t)
	session := bustest.New(t)
	system := bustest.New(t, bustest.SystemType())
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", session.Address())
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", system.Address())
	app := session.StartApp("-name", "org.example.Learned", "-name", "org.example.Learned.Second")
	sysApp := system.StartApp("-name", "org.example.SystemApp")
	testapp := bustest.TestApp(t)

	code, out, errOut := rules(t, "add-from-pid", strconv.Itoa(app.PID()))
	r, ok := ruleIn(t, user, "testapp")
	if code != exitOK || errOut != "" || !ok || r.Bus != appdb.BusSession || r.Exe != testapp ||
		!slices.Equal(r.Names, []string{"org.example.Learned", "org.example.Learned.Second"}) {
		t.Errorf("add-from-pid of an app on the session bus: exit %d, rule %+v\nstdout:\n%s\nstderr:\n%s\nwant its names, its exe, no warning", code, r, out, errOut)
	}

	code, out, errOut = rules(t, "add-from-pid", "--id", "sysapp", strconv.Itoa(sysApp.PID()))
	r, ok = ruleIn(t, user, "sysapp")
	if code != exitOK || errOut != "" || !ok || r.Bus != appdb.BusSystem || !slices.Equal(r.Names, []string{"org.example.SystemApp"}) {
		t.Errorf("add-from-pid of an app on the system bus: exit %d, rule %+v\nstdout:\n%s\nstderr:\n%s\nwant bus system, its name, no warning", code, r, out, errOut)
	}

	sleep := startProcess(t, []string{"sleep", "60"}, "sleep", "60")
	code, out, errOut = rules(t, "add-from-pid", strconv.Itoa(sleep))
	r, ok = ruleIn(t, user, "sleep")
	want := fmt.Sprintf("%s:%d: warning: app \"sleep\": pid %d is on neither the session nor the system bus: busmedic acts for the apps that fall off a bus, so this rule applies only once sleep is on one\n", user, r.Line, sleep)
	if code != exitOK || !ok || errOut != want {
		t.Errorf("add-from-pid of a process on no bus: exit %d, rule written: %v\nstdout:\n%s\nstderr:\n%s\nwant the rule and the warning\n%s", code, ok, out, errOut, want)
	}

	code, out, errOut = rules(t, "add-from-pid", "--id", "again", strconv.Itoa(app.PID()))
	first, _ := ruleIn(t, user, "testapp")
	again, ok := ruleIn(t, user, "again")
	want = fmt.Sprintf("%s:%d: warning: app \"again\": pid %d is also matched by app \"testapp\" (%s:%d): app \"testapp\" comes first and still applies to it: the new rule does nothing for it (remove one, or set enabled = false)\n",
		user, again.Line, app.PID(), user, first.Line)
	if code != exitOK || !ok || errOut != want {
		t.Errorf("add-from-pid of an app a rule matches already: exit %d, rule written: %v\nstdout:\n%s\nstderr:\n%s\nwant the rule and the warning\n%s", code, ok, out, errOut, want)
	}
	code, out, errOut = rules(t, "check")
	for _, w := range []string{
		fmt.Sprintf(`%s:%d: warning: app "again": key names: "org.example.Learned" is also app "testapp"'s (line %d), which comes first: this rule never applies to its owner`, user, again.Line+3, first.Line),
		fmt.Sprintf(`%s:%d: warning: app "again": key exe: %q is also app "testapp"'s (line %d), which comes first: this rule applies to that program only through its names`, user, again.Line+4, testapp, first.Line),
	} {
		if !strings.Contains(errOut, w+"\n") {
			t.Errorf("rules check: stderr lacks\n%s\nstderr:\n%s", w, errOut)
		}
	}
	if code != exitOK || !strings.Contains(out, "4 rules OK (2 warnings)") {
		t.Errorf("rules check: exit %d\nstdout:\n%s\nstderr:\n%s\nwant 4 rules OK with 2 warnings", code, out, errOut)
	}
}

// TestAddFromPIDShell: for a shell running a script handed over a file
// descriptor (bash /dev/fd/3, as "bash <(...)" runs it), add-from-pid
// refuses a relaunch rule, asks for an id rather than making one of "3",
// and warns about the rule it writes; a script in a temporary directory
// gets its rule with a warning; inline code an id from its program.
func TestAddFromPIDShell(t *testing.T) {
	user, _ := rulesEnv(t)
	bus := bustest.New(t)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", bus.Address())
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.Address()) // one bus: "not on the bus"
	fd := startProcess(t, []string{"bash", "/dev/fd/3"}, "bash", "-c", `exec bash /dev/fd/3 3<<<'echo started; sleep 60; :'`)
	pid := strconv.Itoa(fd)

	code, out, errOut := rules(t, "add-from-pid", pid)
	want := "busmedic rules add-from-pid: pid " + pid + " is bash /dev/fd/3, a script handed over a file descriptor, which is gone once read: " +
		"a relaunch could not start it again; run the script from a file of its own, or add the rule with --action notify\n"
	if code != exitError || out != "" || errOut != want {
		t.Errorf("add-from-pid of bash /dev/fd/3: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1 and\n%s", code, out, errOut, want)
	}
	code, out, errOut = rules(t, "add-from-pid", "--action", "notify", pid)
	want = "busmedic rules add-from-pid: pid " + pid + " is bash /dev/fd/3, and owns no bus name: nothing tells which app it is; give the rule an id with --id ID\n"
	if code != exitError || out != "" || errOut != want {
		t.Errorf("add-from-pid --action notify of bash /dev/fd/3: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1 and\n%s", code, out, errOut, want)
	}
	if _, err := os.Stat(user); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused rule left a rules file: %v", err)
	}

	code, out, errOut = rules(t, "add-from-pid", "--action", "notify", "--id", "clock", pid)
	r, ok := ruleIn(t, user, "clock")
	prefix := fmt.Sprintf("%s:%d: warning: app \"clock\": ", user, r.Line)
	want = prefix + "key exec: pid " + pid + " is bash /dev/fd/3, a script handed over a file descriptor, which is gone once read: relaunching it will fail\n" +
		prefix + "key cmdline: matches every process whose command line is \"bash /dev/fd/3\", whatever it runs\n" +
		prefix + "pid " + pid + " is not on the bus: busmedic acts for the apps that fall off a bus, so this rule applies only once bash is on one\n"
	if code != exitOK || !ok || r.Action != appdb.ActionNotify || r.Name != "" || errOut != want {
		t.Errorf("add-from-pid --action notify --id clock: exit %d, rule %+v\nstdout:\n%s\nstderr:\n%s\nwant\n%s", code, r, out, errOut, want)
	}

	script := filepath.Join(t.TempDir(), "tray.sh")
	if err := os.WriteFile(script, []byte("sleep 60; :\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	tmp := startProcess(t, []string{"bash", script}, "bash", script)
	code, out, errOut = rules(t, "add-from-pid", strconv.Itoa(tmp))
	r, ok = ruleIn(t, user, "tray")
	if w := fmt.Sprintf("%s:%d: warning: app \"tray\": key exec: %s is in %s, which is cleared", user, r.Line, script, filepath.Dir(script)); code != exitOK || !ok || !strings.Contains(errOut, w) {
		t.Errorf("add-from-pid of bash %s: exit %d, rule %+v\nstdout:\n%s\nstderr:\n%s\nwant the rule and\n%s", script, code, r, out, errOut, w)
	}

	inline := startProcess(t, []string{"bash", "-c", "sleep 60; :"}, "bash", "-c", "sleep 60; :")
	code, out, errOut = rules(t, "add-from-pid", strconv.Itoa(inline))
	r, ok = ruleIn(t, user, "sleep")
	if code != exitOK || !ok || r.Cmdline != "bash -c sleep 60; :" || strings.Contains(errOut, "key exec") {
		t.Errorf("add-from-pid of bash -c: exit %d, rule %+v\nstdout:\n%s\nstderr:\n%s", code, r, out, errOut)
	}
}

func TestRulesUsage(t *testing.T) {
	rulesEnv(t)
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"list", "extra"},
		{"list", "--bogus"},
		{"check", "a", "b"},
		{"add-from-pid"},
		{"add-from-pid", "abc"},
		{"add-from-pid", "1", "--action", "restart"},
		{"path", "x"},
		{"--config"},
	} {
		if code, _, _ := rules(t, args...); code != 2 {
			t.Errorf("rules %q = %d, want 2", args, code)
		}
	}
	if code, out, _ := rules(t, "-h"); code != 0 || !strings.Contains(out, "Usage: busmedic rules") {
		t.Errorf("rules -h = %d %q", code, out)
	}
}

// TestAddFromPIDKeep: --action keep makes a keep rule of an app on the
// session bus, and refuses one on the system bus, which cannot be kept,
// saying why and writing nothing.
func TestAddFromPIDKeep(t *testing.T) {
	user, _ := rulesEnv(t)
	session := bustest.New(t)
	system := bustest.New(t, bustest.SystemType())
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", session.Address())
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", system.Address())
	app := session.StartApp("-name", "org.example.Kept")
	sysApp := system.StartApp("-name", "org.example.SystemKept")

	code, out, errOut := rules(t, "add-from-pid", "--id", "kept", "--action", "keep", strconv.Itoa(app.PID()))
	r, ok := ruleIn(t, user, "kept")
	if code != exitOK || errOut != "" || !ok || r.Action != appdb.ActionKeep || r.Bus != appdb.BusSession {
		t.Errorf("add-from-pid --action keep: exit %d, rule %+v\nstdout:\n%s\nstderr:\n%s\nwant a keep rule on the session bus", code, r, out, errOut)
	}

	code, _, errOut = rules(t, "add-from-pid", "--id", "syskept", "--action", "keep", strconv.Itoa(sysApp.PID()))
	if _, written := ruleIn(t, user, "syskept"); code != exitError || written || !strings.Contains(errOut, "only the session bus can be kept") {
		t.Errorf("add-from-pid --action keep of a system-bus app: exit %d, rule written: %v, stderr:\n%s\nwant a refusal and no rule", code, written, errOut)
	}
}
