package appdb

import (
	"errors"
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
		// A script that owns names is recognised by them, not by a
		// command line that changes with its arguments.
		{"script with names", watcher.Peer{Names: []string{"org.example.Tray"}, Exe: "/usr/bin/python3.11",
			Argv: []string{"python3", "/home/u/bin/tray.py", "--verbose"}}, func(r Rule) bool {
			return r.ID == "tray" && r.Cmdline == "" && r.Exe == "" && slices.Equal(r.Names, []string{"org.example.Tray"})
		}},
		// bash /dev/fd/3: the script's "name" is a descriptor number.
		{"descriptor script with names", watcher.Peer{Names: []string{"org.example.Clock"}, Exe: "/usr/bin/bash",
			Argv: []string{"bash", "/dev/fd/3"}}, func(r Rule) bool {
			return r.ID == "clock" && r.Name == "Clock" && r.Cmdline == "" && r.Exe == ""
		}},
		{"descriptor script in a service", watcher.Peer{Exe: "/usr/bin/bash", Argv: []string{"bash", "/dev/fd/63"},
			Unit: "app-clock@autostart.service"}, func(r Rule) bool {
			return r.ID == "clock" && r.Cmdline == "bash /dev/fd/63" && r.Exe == ""
		}},
		{"descriptor script, nothing else", watcher.Peer{Exe: "/usr/bin/bash", Argv: []string{"bash", "/dev/fd/3"}}, func(r Rule) bool {
			return r.ID == "bash" && r.Exe == "" && r.Cmdline == "bash /dev/fd/3"
		}},
		{"inline shell code", watcher.Peer{Exe: "/usr/bin/bash", Argv: []string{"bash", "-c", "FOO=1 exec /usr/bin/sleep 60"}}, func(r Rule) bool {
			return r.ID == "sleep" && r.Cmdline == "bash -c FOO=1 exec /usr/bin/sleep 60" && r.Exe == ""
		}},
		// bash -e is errexit: the script follows.
		{"shell option", watcher.Peer{Exe: "/usr/bin/bash", Argv: []string{"bash", "-e", "/home/u/bin/sync.sh"}}, func(r Rule) bool {
			return r.ID == "sync"
		}},
		{"perl -e", watcher.Peer{Exe: "/usr/bin/perl", Argv: []string{"perl", "-e", "sleep 60"}}, func(r Rule) bool {
			return r.ID == "sleep" && r.Cmdline == "perl -e sleep 60"
		}},
		{"bare shell", watcher.Peer{Exe: "/usr/bin/bash", Argv: []string{"-bash"}}, func(r Rule) bool {
			return r.ID == "bash" && r.Exe == "" && r.Cmdline == "-bash"
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

// TestLearn: the rule add-from-pid writes, what it warns about (by key),
// and what it refuses.
func TestLearn(t *testing.T) {
	fd := watcher.Peer{PID: 7, Exe: "/usr/bin/bash", Argv: []string{"bash", "/dev/fd/3"}}
	withNames := fd
	withNames.Names = []string{"org.example.Clock"}
	inUnit := fd
	inUnit.Unit = "clock.service"
	tests := []struct {
		name    string
		peer    watcher.Peer
		id      string
		action  Action
		wantID  string
		warns   []string // the keys warned about, in order ("" for none)
		refused error
	}{
		{"program", watcher.Peer{Names: []string{"org.example.A"}, Exe: "/usr/bin/a", Argv: []string{"a"}}, "", ActionRelaunch, "a", nil, nil},
		{"program, id given", watcher.Peer{Exe: "/usr/bin/a", Argv: []string{"a"}}, "mine", ActionRelaunch, "mine", nil, nil},
		{"descriptor script relaunched", fd, "", ActionRelaunch, "", nil, ErrCannotRelaunch},
		{"descriptor script relaunched, id given", fd, "clock", ActionRelaunch, "", nil, ErrCannotRelaunch},
		{"descriptor script, no id", fd, "", ActionNotify, "", nil, ErrNoID},
		{"descriptor script, id given", fd, "clock", ActionNotify, "clock", []string{"exec", "cmdline"}, nil},
		{"descriptor script with names", withNames, "", ActionNotify, "clock", []string{"exec"}, nil},
		{"descriptor script in a service", inUnit, "", ActionRelaunch, "clock", []string{"cmdline"}, nil},
		{"bare shell", watcher.Peer{PID: 7, Exe: "/usr/bin/bash", Argv: []string{"bash"}}, "", ActionRelaunch, "", nil, ErrCannotRelaunch},
		{"temporary script", watcher.Peer{Exe: "/usr/bin/bash", Argv: []string{"bash", "/tmp/tmp.x1/tray.sh"}}, "", ActionRelaunch, "tray", []string{"exec"}, nil},
		{"lasting script", watcher.Peer{Exe: "/usr/bin/bash", Argv: []string{"bash", "/home/u/bin/tray.sh"}}, "", ActionRelaunch, "tray", nil, nil},
		{"inline code", watcher.Peer{Exe: "/usr/bin/bash", Argv: []string{"bash", "-c", "sleep 60; :"}}, "", ActionRelaunch, "sleep", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, warns, err := Learn(tt.peer, tt.id, tt.action)
			if tt.refused != nil {
				if !errors.Is(err, tt.refused) || !strings.Contains(err.Error(), "pid 7 is bash") {
					t.Errorf("Learn = %v, want it refused with %v, naming the process", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, w := range warns {
				if !w.Warning || w.App != r.ID {
					t.Errorf("warning %+v: not a warning about app %q", w, r.ID)
				}
				keys = append(keys, w.Key)
			}
			if r.ID != tt.wantID || r.Action != tt.action || !slices.Equal(keys, tt.warns) {
				t.Errorf("Learn = id %q action %q, warnings about %q %v; want id %q, warnings about %q", r.ID, r.Action, keys, warns, tt.wantID, tt.warns)
			}
			if err := r.Validate(); err != nil {
				t.Errorf("the rule does not validate: %v\n%s", err, FormatRule(r))
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

// A rules file holds UTF-8 text only: a process whose command line, program
// or directory has other bytes is refused, rather than written with U+FFFD
// in their place; a directory removed since is left out of the rule.
func TestLearnWhatAFileCannotHold(t *testing.T) {
	for _, p := range []watcher.Peer{
		{PID: 8, Exe: "/usr/bin/python3", Argv: []string{"python3", "/opt/caf\xe9/tray.py"}, Names: []string{"org.example.Tray"}},
		{PID: 8, Exe: "/opt/caf\xe9/tray", Argv: []string{"tray"}, Names: []string{"org.example.Tray"}},
		{PID: 8, Exe: "/usr/bin/tray", Argv: []string{"tray"}, Cwd: "/home/u/caf\xe9", Names: []string{"org.example.Tray"}},
	} {
		if _, _, err := Learn(p, "", ActionRelaunch); err == nil || !strings.Contains(err.Error(), "not UTF-8") {
			t.Errorf("Learn(%q, %q, %q) = %v, want it refused: not UTF-8", p.Argv, p.Exe, p.Cwd, err)
		}
	}
	r, _, err := Learn(watcher.Peer{PID: 8, Exe: "/usr/bin/tray", Argv: []string{"tray"}, Cwd: "/home/u/build (deleted)",
		Names: []string{"org.example.Tray"}}, "", ActionRelaunch)
	if err != nil || r.Workdir != "" {
		t.Errorf("Learn with a removed directory: workdir %q, %v; want none", r.Workdir, err)
	}
}
