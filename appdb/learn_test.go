package appdb

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"busmedic/watcher"
)

func TestFromPeer(t *testing.T) {
	tests := []struct {
		name string
		peer watcher.Peer
		want func(r Rule) bool
	}{
		{"dunst", watcher.Peer{
			Names: []string{":1.5", "org.freedesktop.Notifications"}, Exe: "/usr/bin/dunst",
			Argv: []string{"dunst", "-verbosity", "crit"}, Cwd: "/home/u",
		}, func(r Rule) bool {
			return r.ID == "dunst" && r.Exe == "/usr/bin/dunst" && r.Workdir == "/home/u" &&
				slices.Equal(r.Names, []string{"org.freedesktop.Notifications"}) &&
				slices.Equal(r.Exec, []string{"dunst", "-verbosity", "crit"}) && r.Action == ActionRelaunch
		}},
		{"script", watcher.Peer{
			Exe: "/usr/bin/python3.11", Argv: []string{"/usr/bin/python3", "-u", "/opt/My Tray/tray[1].py"},
		}, func(r Rule) bool {
			return r.ID == "tray-1" && r.Exe == "" && r.Cmdline == `/usr/bin/python3 -u /opt/My Tray/tray\[1\].py`
		}},
		{"relative argv0", watcher.Peer{Exe: "/home/u/bin/Thing", Argv: []string{"./Thing"}}, func(r Rule) bool {
			return r.ID == "thing" && r.Exec[0] == "/home/u/bin/Thing"
		}},
		{"unreadable process", watcher.Peer{Names: []string{"org.example.App"}}, func(r Rule) bool {
			return r.ID == "app" && r.Exec == nil && len(r.Names) == 1
		}},
		{"argv only", watcher.Peer{Argv: []string{"/usr/bin/blueman-applet"}}, func(r Rule) bool {
			return r.ID == "blueman-applet" && r.Argv0 == "blueman-applet"
		}},
		{"in a user service", watcher.Peer{Exe: "/usr/bin/dunst", Argv: []string{"/usr/bin/dunst"}, Unit: "app-dunst@autostart.service"}, func(r Rule) bool {
			return r.Unit == "app-dunst@autostart.service" && r.Exe == "/usr/bin/dunst"
		}},
		// Where the apps busmedic started run: restarting it would
		// restart busmedic.
		{"in busmedic's service", watcher.Peer{Exe: "/usr/bin/dunst", Unit: "busmedic.service"}, func(r Rule) bool {
			return r.Unit == ""
		}},
		{"in busmedic's autostart service", watcher.Peer{Exe: "/usr/bin/dunst", Unit: "app-busmedic@autostart.service"}, func(r Rule) bool {
			return r.Unit == ""
		}},
		{"in a unit systemd would not start", watcher.Peer{Exe: "/usr/bin/dunst", Unit: "app-dunst@.service"}, func(r Rule) bool {
			return r.Unit == ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := FromPeer(tt.peer)
			if !tt.want(r) {
				t.Errorf("FromPeer = %+v", r)
			}
		})
	}
}

func TestFromProcess(t *testing.T) {
	r, err := FromProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	if r.Exe != exe || r.Names != nil || len(r.Exec) == 0 {
		t.Errorf("FromProcess(self) = %+v, want exe %s, no names, a command", r, exe)
	}
	if _, err := FromProcess(999999999); err == nil {
		t.Error("FromProcess of a missing process: no error")
	}
}

// TestFromProcessOtherUser checks that another user's process gets no
// rule: busmedic only restarts the user's own apps.
func TestFromProcessOtherUser(t *testing.T) {
	other := otherUsersProcess(t)
	if other == 0 {
		t.Skip("no process of another user runs here")
	}
	if _, err := FromProcess(other); err == nil || !strings.Contains(err.Error(), "not as you") {
		t.Errorf("FromProcess(%d), another user's process = %v, want it refused", other, err)
	}
}

// otherUsersProcess returns the pid of a process another user runs, or 0.
func otherUsersProcess(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if fi, err := os.Stat("/proc/" + e.Name()); err == nil && int(fi.Sys().(*syscall.Stat_t).Uid) != os.Getuid() {
			return pid
		}
	}
	return 0
}

func TestFromLivePeer(t *testing.T) {
	p, err := watcher.ProcessInfo(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	p.Names = []string{"org.example.Test"}
	r := FromPeer(p)
	if err := r.Validate(); err != nil {
		t.Fatalf("rule from this process does not validate: %v\n%s", err, FormatRule(r))
	}
	// Run under systemd, this process is in a unit: its own, which a rule
	// for it must not name (busmedic's tray and editor run in the
	// daemon's).
	if r.Unit != "" {
		t.Errorf("a rule for this process names its own unit %q", r.Unit)
	}
	set, _ := Parse("f.toml", []byte(FormatRule(r)))
	p.UID = -1
	if got, ok := set.Match(p); !ok || got.ID != r.ID {
		t.Errorf("the learned rule does not match its own peer: %+v", got)
	}
}
