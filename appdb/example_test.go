package appdb_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"busmedic/appdb"
	"busmedic/watcher"
)

func ExampleLoad() {
	dir, err := os.MkdirTemp("", "busmedic-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	user := filepath.Join(dir, "apps.toml")
	err = os.WriteFile(user, []byte(`version = 1

[[app]]
id = "dunst"
name = "Dunst"
names = ["org.freedesktop.Notifications"]
exe = "/usr/bin/dunst"
grace = "3s"
`), 0o600)
	if err != nil {
		log.Fatal(err)
	}

	set, err := appdb.Load(appdb.Paths{User: user})
	if err != nil {
		log.Fatal(err) // appdb.Errors: one "FILE:LINE: app ...: key ...: reason" per line
	}
	for _, r := range set.Rules() {
		fmt.Println(r.ID, r.Bus, r.Action, r.Grace, r.ReadyTimeout, "line", r.Line)
	}
	// Output:
	// dunst session relaunch 3s 10s line 3
}

func ExampleParse_errors() {
	_, err := appdb.Parse("apps.toml", []byte(`[[app]]
id = "dunst"
names = ["Notifications"]
grace = "2 seconds"
`))
	fmt.Println(err)
	// Output:
	// apps.toml:3: app "dunst": key names: bad bus name "Notifications": want at least two elements separated by '.', such as org.example.App
	// apps.toml:4: app "dunst": key grace: bad duration "2 seconds": want a number and a unit such as "500ms", "2s" or "1m"
}

func ExampleSet_Match() {
	set, err := appdb.Parse("apps.toml", []byte(`
[[app]]
id = "panel"
exe = "/usr/bin/xfce4-panel"

[[app]]
id = "dunst"
names = ["org.freedesktop.Notifications"]
`))
	if err != nil {
		log.Fatal(err)
	}
	peer := watcher.Peer{
		UniqueName: ":1.42",
		Names:      []string{"org.freedesktop.Notifications"},
		UID:        -1, // unknown: not another user's process
		Exe:        "/usr/bin/dunst",
	}
	if r, ok := set.Match(peer); ok {
		fmt.Println(r.ID, r.Action)
	}
	// Output:
	// dunst relaunch
}

func ExampleFromPeer() {
	r := appdb.FromPeer(watcher.Peer{
		Names: []string{"org.xfce.Panel"},
		Exe:   "/usr/bin/xfce4-panel",
		Argv:  []string{"xfce4-panel", "--sm-client-id", "2a"},
		Cwd:   "/home/ada",
	})
	fmt.Print(appdb.FormatRule(r))
	// Output:
	// [[app]]
	// id = "xfce4-panel"
	// name = "xfce4-panel"
	// names = ["org.xfce.Panel"]
	// exe = "/usr/bin/xfce4-panel"
	// action = "relaunch"
	// exec = ["xfce4-panel", "--sm-client-id", "2a"]
	// workdir = "/home/ada"
}

// A rule for a running process, here this one, as "busmedic rules
// add-from-pid" makes it.
func ExampleFromProcess() {
	r, err := appdb.FromProcess(os.Getpid())
	if err != nil {
		log.Fatal(err) // no such process, or another user's
	}
	r.Action = appdb.ActionNotify
	fmt.Print(appdb.FormatRule(r))
}

func ExampleWriteJSON() {
	set, err := appdb.Parse("apps.toml", []byte(`
[[app]]
id = "dunst"
names = ["org.freedesktop.Notifications"]
grace = "3s"
`))
	if err != nil {
		log.Fatal(err)
	}
	if err := appdb.WriteJSON(os.Stdout, set.Rules()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// [
	//   {
	//     "id": "dunst",
	//     "bus": "session",
	//     "names": [
	//       "org.freedesktop.Notifications"
	//     ],
	//     "action": "relaunch",
	//     "grace": "3s",
	//     "ready_timeout": "10s",
	//     "stop_timeout": "5s",
	//     "max_restarts": 5,
	//     "restart_window": "1m0s",
	//     "enabled": true,
	//     "source": "apps.toml",
	//     "line": 2
	//   }
	// ]
}

func ExampleWriteTable() {
	set, err := appdb.Parse("apps.toml", []byte(`
[[app]]
id = "dunst"
names = ["org.freedesktop.Notifications"]

[[app]]
id = "panel"
exe = "/usr/bin/xfce4-panel"
action = "signal"
signal = "SIGUSR1"
`))
	if err != nil {
		log.Fatal(err)
	}
	if err := appdb.WriteTable(os.Stdout, set.Rules()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// ID     BUS      ACTION    MATCH                                SOURCE
	// dunst  session  relaunch  names=org.freedesktop.Notifications  apps.toml:2
	// panel  session  signal    exe=/usr/bin/xfce4-panel             apps.toml:6
}

func ExampleCheckFiles() {
	dir, err := os.MkdirTemp("", "busmedic-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(good, []byte("version = 1\n\n[[app]]\nid = \"dunst\"\nexe = \"/usr/bin/dunst\"\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("version = 1\n\n[[app]]\nid = \"panel\"\nexe = \"/usr/bin/xfce4-panel\"\ngrace = \"soon\"\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	var out strings.Builder
	ok := appdb.CheckFiles(&out, &out, []string{good, bad, filepath.Join(dir, "none.toml")})
	fmt.Print(strings.ReplaceAll(out.String(), dir, "DIR"))
	fmt.Println("all good:", ok)
	// Output:
	// DIR/good.toml: 1 rule OK
	// DIR/bad.toml:6: app "panel": key grace: bad duration "soon": want a number and a unit such as "500ms", "2s" or "1m"
	// DIR/none.toml: no such file
	// all good: false
}
