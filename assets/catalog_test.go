package assets_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/assets"
	"busmedic/watcher/bustest"
)

// claimDeadline bounds each wait: a real program starting on Xvfb, or
// exiting after its bus died, takes well under a second here.
const claimDeadline = 15 * time.Second

func TestCatalogParses(t *testing.T) {
	apps, err := assets.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) == 0 {
		t.Fatal("empty catalog")
	}
	for _, a := range apps {
		if !a.Verified && !strings.HasPrefix(a.Evidence, "not verified: ") {
			t.Errorf("%s: an unverified entry's evidence must start with \"not verified: \" and say why", a.ID)
		}
	}
	for _, bad := range []string{
		`[[app]]
id = "x"
exe = "x"
behaviour = "exits"
evidence = "e"`,
		`[[app]]
id = "x"
exe = "/usr/bin/x"
behaviour = "vanishes"
evidence = "e"`,
		`[[app]]
id = "x"
exe = "/usr/bin/x"
behaviour = "exits"`,
		`[[app]]
id = "x"
names = ["a.b"]
behaviour = "exits"
evidence = "e"
verified = true`,
		`[[app]]
id = "x"
exe = "/usr/bin/x"
behaviour = "exits"
evidence = "e"
colour = "red"`,
	} {
		if _, err := assets.ParseCatalog([]byte(bad)); err == nil {
			t.Errorf("ParseCatalog accepted:\n%s", bad)
		}
	}
}

// TestCatalogClaims checks every verified claim of the catalog on this
// machine: the real program, started on a real dbus-daemon (and Xvfb when it
// needs a display), owns its names; then the bus is killed, and the program
// must exit. This is the evidence catalog.toml cites.
func TestCatalogClaims(t *testing.T) {
	apps, err := assets.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	display := ""
	for _, app := range apps {
		if app.Verified && app.Display && display == "" {
			display = bustest.StartXvfb(t, 1024, 768).Name
		}
	}
	for _, app := range apps {
		if !app.Verified {
			continue
		}
		t.Run(app.ID, func(t *testing.T) {
			if _, err := os.Stat(app.Exe); err != nil {
				t.Fatalf("%s is not installed (%v): run scripts/ensure-deps test (apt-get install -y %s)", app.Exe, err, app.Package)
			}
			bus := bustest.New(t)
			conn := connect(t, bus)
			owned := watchOwner(t, conn, app.Names[0])

			cmd := exec.Command(app.Exe)
			// The program's own config and state stay out of the way.
			home := t.TempDir()
			cmd.Env = append(bus.Env(), "HOME="+home, "XDG_CONFIG_HOME="+home+"/.config",
				"XDG_CACHE_HOME="+home+"/.cache", "XDG_DATA_HOME="+home+"/.local/share")
			if app.Display {
				cmd.Env = append(cmd.Env, "DISPLAY="+display)
			}
			// Its own process group, to end the helpers it starts too.
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
			// A file, not a pipe: Wait would also wait for the helpers
			// that inherit a pipe.
			out, err := os.Create(t.TempDir() + "/output")
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var waitErr error
			exited := make(chan struct{})
			go func() { waitErr = cmd.Wait(); close(exited) }()
			t.Cleanup(func() {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			})
			output := func() string { b, _ := os.ReadFile(out.Name()); return string(b) }

			select {
			case owner := <-owned:
				var pid uint32
				if err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, owner).Store(&pid); err != nil {
					t.Fatalf("pid of %s: %v", owner, err)
				}
				if int(pid) != cmd.Process.Pid {
					t.Fatalf("%s is owned by pid %d, not by %s (pid %d)", app.Names[0], pid, app.Exe, cmd.Process.Pid)
				}
			case <-exited:
				t.Fatalf("%s exited at start: %v\n%s", app.Exe, waitErr, output())
			case <-time.After(claimDeadline):
				t.Fatalf("%s did not own %s within %s\n%s", app.Exe, app.Names[0], claimDeadline, output())
			}

			bus.Kill()
			killed := time.Now()
			switch app.Behaviour {
			case assets.Exits:
				select {
				case <-exited:
					t.Logf("%s exited %s after the bus was killed: %v", app.Exe, time.Since(killed).Round(time.Millisecond), exitStatus(waitErr))
				case <-time.After(claimDeadline):
					t.Fatalf("%s still runs %s after its bus was killed: the catalog's claim %q is wrong here", app.Exe, claimDeadline, app.Behaviour)
				}
			default:
				t.Fatalf("no check for behaviour %q yet: write one before marking the entry verified", app.Behaviour)
			}
		})
	}
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + ws.Signal().String()
		}
		return ee.String()
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func connect(t *testing.T, bus *bustest.Bus) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatalf("connect to the test bus: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// watchOwner returns a channel that gets the unique name of name's owner
// once it has one. It subscribes before the program starts, so that the
// moment cannot be missed.
func watchOwner(t *testing.T, conn *dbus.Conn, name string) <-chan string {
	t.Helper()
	signals := make(chan *dbus.Signal, 64)
	conn.Signal(signals)
	if err := conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, name)); err != nil {
		t.Fatal(err)
	}
	owner := make(chan string, 1)
	go func() {
		for s := range signals {
			if len(s.Body) == 3 && s.Body[0] == name {
				if o, _ := s.Body[2].(string); o != "" {
					owner <- o
					return
				}
			}
		}
	}()
	return owner
}
