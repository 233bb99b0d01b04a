package appdb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adrg/xdg"
)

func TestLayering(t *testing.T) {
	root := t.TempDir()
	sys1 := writeRules(t, filepath.Join(root, "etc1"), `
[settings]
idle_minutes = 10
restart_after_update = "never"

[[app]]
id = "dunst"
exe = "/usr/bin/dunst"
grace = "1s"

[[app]]
id = "panel"
exe = "/usr/bin/xfce4-panel"
`)
	sys2 := writeRules(t, filepath.Join(root, "etc2"), `
[settings]
idle_minutes = 20
recover_on_logout = true

[[app]]
id = "dunst"
exe = "/usr/bin/dunst"
grace = "9s"

[[app]]
id = "nm-applet"
exe = "/usr/bin/nm-applet"
bus = "system"
`)
	user := writeRules(t, filepath.Join(root, "home"), `
[settings]
restart_after_update = "ask"

[[app]]
id = "panel"
enabled = false

[[app]]
id = "mine"
names = ["org.example.Mine"]
`)
	set, err := Load(Paths{User: user, System: []string{sys1, sys2, filepath.Join(root, "missing", fileName)}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range set.Rules() {
		ids = append(ids, r.ID)
	}
	if got := strings.Join(ids, " "); got != "panel mine dunst nm-applet" {
		t.Errorf("rule order = %q", got)
	}
	if d, _ := set.Lookup("dunst"); d.Grace.Seconds() != 1 || d.Source != sys1 {
		t.Errorf("dunst from %s with grace %v: the first XDG dir must win", d.Source, d.Grace)
	}
	if p, _ := set.Lookup("panel"); p.Enabled || p.Source != user || p.Exe != "" {
		t.Errorf("panel = %+v: the user entry must replace the system one", p)
	}
	if _, ok := set.Lookup("nope"); ok {
		t.Error("Lookup of a missing id succeeded")
	}
	want := Settings{RecoverOnLogout: true, RestartAfterUpdate: "ask", IdleMinutes: 10, StopDeafServices: true, Tray: TrayAlways}
	if got := set.Settings(); got != want {
		t.Errorf("Settings = %+v, want %+v", got, want)
	}
	if got := strings.Join(set.Files(), " "); got != strings.Join([]string{user, sys1, sys2}, " ") {
		t.Errorf("Files = %q", got)
	}
}

func TestLoadReportsAllFiles(t *testing.T) {
	root := t.TempDir()
	sys := writeRules(t, filepath.Join(root, "etc"), "[[app]]\nid = \"a\"\nexe = \"x\"\n")
	user := writeRules(t, filepath.Join(root, "home"), "[[app]]\nid = \"b\"\n")
	_, err := Load(Paths{User: user, System: []string{sys}})
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, want := range []string{sys + ":3: app \"a\": key exe", user + ":1: app \"b\": key names: no matcher"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestLoadNoFiles(t *testing.T) {
	set, err := Load(Paths{User: filepath.Join(t.TempDir(), fileName)})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules()) != 0 || set.Settings() != DefaultSettings() {
		t.Errorf("empty load gave %v, %+v", set.Rules(), set.Settings())
	}
}

func TestPermissionRefusal(t *testing.T) {
	for _, mode := range []os.FileMode{0o620, 0o602, 0o666} {
		p := writeRules(t, t.TempDir(), "[[app]]\nid = \"a\"\nexe = \"/bin/a\"\n")
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(Paths{User: p})
		if !errors.Is(err, ErrUnsafe) {
			t.Fatalf("mode %04o: Load error = %v, want ErrUnsafe", mode, err)
		}
		if !strings.Contains(err.Error(), p+": refusing to load: the file is writable by group or others") {
			t.Errorf("mode %04o: error %q does not name the file and the reason", mode, err)
		}
		if _, err := OpenFile(p); !errors.Is(err, ErrUnsafe) {
			t.Errorf("OpenFile of an unsafe file: %v", err)
		}
		if _, err := CheckFile(p); !errors.Is(err, ErrUnsafe) {
			t.Errorf("CheckFile of an unsafe file: %v", err)
		}
	}
}

func TestOwnerRefusal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	p := writeRules(t, t.TempDir(), "[[app]]\nid = \"a\"\nexe = \"/bin/a\"\n")
	if err := os.Chown(p, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	_, err := Load(Paths{User: p})
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "owned by uid 4242") {
		t.Fatalf("Load error = %v, want ErrUnsafe naming the owner", err)
	}
}

func TestDefaultPaths(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/h/.config")
	t.Setenv("XDG_CONFIG_DIRS", "/etc/first:/etc/second")
	t.Setenv(EnvConfig, "")
	xdg.Reload()
	t.Cleanup(xdg.Reload)

	p := DefaultPaths("")
	want := Paths{User: "/h/.config/busmedic/apps.toml", System: []string{"/etc/first/busmedic/apps.toml", "/etc/second/busmedic/apps.toml"}}
	if p.User != want.User || strings.Join(p.System, ":") != strings.Join(want.System, ":") {
		t.Errorf("DefaultPaths = %+v, want %+v", p, want)
	}
	t.Setenv(EnvConfig, "/env/apps.toml")
	if got := DefaultPaths("").User; got != "/env/apps.toml" {
		t.Errorf("with %s: user = %q", EnvConfig, got)
	}
	if got := DefaultPaths("/flag.toml").User; got != "/flag.toml" {
		t.Errorf("with a flag: user = %q", got)
	}
}

func TestPerBusRestartSetting(t *testing.T) {
	set, err := Parse("apps.toml", []byte("version = 1\n[settings]\nrestart_after_update = \"when-idle\"\nrestart_system_bus_after_update = \"never\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := set.Settings()
	if s.RestartAfterUpdateFor("session") != "when-idle" || s.RestartAfterUpdateFor("system") != "never" {
		t.Errorf("settings %+v", s)
	}
	_, err = Parse("apps.toml", []byte("[settings]\nrestart_session_bus_after_update = \"sometimes\"\n"))
	if err == nil || !strings.Contains(err.Error(), "apps.toml:2") || !strings.Contains(err.Error(), "restart_session_bus_after_update") {
		t.Errorf("bad value: %v", err)
	}
}
