package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/adrg/xdg"
)

// rulesEnv points the XDG directories at temporary ones and returns the user
// file and the system file paths (neither exists yet).
func rulesEnv(t *testing.T) (user, system string) {
	t.Helper()
	root := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(root, "home"))
	t.Setenv("XDG_CONFIG_DIRS", filepath.Join(root, "etc"))
	t.Setenv("BUSMEDIC_CONFIG", "")
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
	if code, _, _ := rules(t, "check", filepath.Join(t.TempDir(), "missing.toml")); code != 1 {
		t.Errorf("check of a missing file = %d", code)
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
