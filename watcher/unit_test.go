package watcher

import (
	"os"
	"testing"
)

// The contents of /proc/PID/cgroup as the kernel writes them, on the kinds
// of host busmedic meets.
func TestCgroupUnit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cgroup  string
		unit    string
		manager int
	}{
		{"v2: autostart service of the user manager",
			"0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-dunst@autostart.service\n",
			"app-dunst@autostart.service", 1000},
		{"v2: app service with an escaped name",
			"0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-nm\\x2dapplet@autostart.service\n",
			"app-nm\\x2dapplet@autostart.service", 1000},
		{"v2: service in a slice of its own",
			"0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/gnome-terminal-server.service\n",
			"gnome-terminal-server.service", 1000},
		{"v2: a cgroup the service made below itself (Delegate=)",
			"0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-foo.service/worker\n",
			"app-foo.service", 1000},
		{"v2: app scope under the user manager",
			"0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-org.gnome.Evince-4242.scope\n",
			"", -1},
		{"v2: the user manager itself",
			"0::/user.slice/user-1000.slice/user@1000.service/init.scope\n",
			"", -1},
		{"v2: login session scope",
			"0::/user.slice/user-1000.slice/session-2.scope\n",
			"", -1},
		{"v2: system service",
			"0::/system.slice/NetworkManager.service\n",
			"NetworkManager.service", -1},
		{"v2: another user's manager",
			"0::/user.slice/user-1001.slice/user@1001.service/app.slice/dbus.service\n",
			"dbus.service", 1001},
		{"hybrid: name=systemd is systemd's hierarchy",
			"12:pids:/user.slice/user-1000.slice/user@1000.service\n" +
				"11:memory:/user.slice/user-1000.slice/user@1000.service\n" +
				"10:cpu,cpuacct:/user.slice\n" +
				"4:devices:/user.slice\n" +
				"1:name=systemd:/user.slice/user-1000.slice/user@1000.service/app.slice/app-blueman@autostart.service\n" +
				"0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-blueman@autostart.service\n",
			"app-blueman@autostart.service", 1000},
		{"hybrid: session scope",
			"12:pids:/user.slice/user-1000.slice/session-3.scope\n" +
				"1:name=systemd:/user.slice/user-1000.slice/session-3.scope\n" +
				"0::/user.slice/user-1000.slice/session-3.scope\n",
			"", -1},
		{"v1 without systemd, in a container",
			"9:name=systemd:/\n8:pids:/\n4:memory:/process_api/ccf5220f39435de34f1e9343e1f194d8\n1:cpu:/\n0::/\n",
			"", -1},
		{"empty", "", "", -1},
		{"garbage", "not a cgroup file\n::\n0:\n", "", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unit, manager := cgroupUnit(tc.cgroup)
			if unit != tc.unit || manager != tc.manager {
				t.Errorf("cgroupUnit = %q, %d; want %q, %d", unit, manager, tc.unit, tc.manager)
			}
		})
	}
}

// ProcessInfo reads the unit of a live process: this test's own, which is
// whatever this machine runs tests in.
func TestProcessInfoUnit(t *testing.T) {
	p, err := ProcessInfo(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	want, manager := cgroupUnit(string(cg))
	if manager != os.Getuid() {
		want = ""
	}
	if p.Unit != want {
		t.Errorf("Unit = %q, want %q from\n%s", p.Unit, want, cg)
	}
}
