package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// chaosApp is a fixture app of the chaos session, with its rule.
type chaosApp struct {
	id, name string
	args     []string // testapp flags besides -name
	rule     string   // rule keys besides id, names and exec
}

// chaosApps: apps that exit with their bus (one with the default grace),
// one that stays alive and deaf (default grace: it is stopped after 2 s),
// one that reconnects by itself (busmedic must leave it alone).
var chaosApps = []chaosApp{
	{id: "exit1", name: "org.example.Exit1", args: []string{"-mode", "exit"}, rule: `grace = "100ms"`},
	{id: "exit2", name: "org.example.Exit2", args: []string{"-mode", "exit"}},
	{id: "deaf", name: "org.example.Deaf", args: []string{"-mode", "deaf"}, rule: `stop_timeout = "300ms"`},
	{id: "reconnector", name: "org.example.Reconnector", args: []string{"-mode", "reconnect"}, rule: `grace = "5s"`},
}

// notificationServer keeps every notification open (testapp -notifications).
var notificationServer = chaosApp{id: "notifications", name: "org.example.Notifier", args: []string{"-mode", "exit", "-notifications"}}

func chaosRules(t *testing.T, apps []chaosApp) string {
	exe := bustest.TestApp(t)
	var b strings.Builder
	b.WriteString("version = 1\n")
	for _, a := range apps {
		exec := []string{strconv.Quote(exe), strconv.Quote("-name"), strconv.Quote(a.name)}
		for _, arg := range a.args {
			exec = append(exec, strconv.Quote(arg))
		}
		// By name only: an exe key would match every fixture, which all
		// run the same program.
		fmt.Fprintf(&b, "\n[[app]]\nid = %q\nnames = [%q]\nexec = [%s]\n%s\n", a.id, a.name, strings.Join(exec, ", "), a.rule)
	}
	return b.String()
}

// chaos is a session of busmedic run with the chaos apps on its bus.
type chaos struct {
	*session
	apps []chaosApp
	rng  *rand.Rand
	// restarts counts the bus restarts, for the log.
	restarts int
	// id is the instance id of the bus now running.
	id string
}

func newChaos(t *testing.T, apps []chaosApp, opts ...bustest.Option) *chaos {
	t.Helper()
	c := &chaos{session: newSession(t, chaosRules(t, apps), opts...), apps: apps,
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 14))}
	t.Cleanup(func() { killBusProcesses(c.bus.Address()) })
	return c
}

// startApps starts every app on the bus by hand, as the desktop session does.
func (c *chaos) startApps() {
	c.t.Helper()
	for _, a := range c.apps {
		c.bus.StartApp(append([]string{"-name", a.name}, a.args...)...)
	}
}

// begin starts the apps by hand, then busmedic run, and waits until
// busmedic sees every app on the bus.
func (c *chaos) begin() {
	c.t.Helper()
	c.startApps()
	c.start()
	c.awaitApps()
}

// awaitApps waits until busmedic sees every app running.
func (c *chaos) awaitApps() {
	c.t.Helper()
	c.await("the apps seen", func(st control.Status) bool {
		return !slices.ContainsFunc(c.apps, func(a chaosApp) bool { return !app(st, a.id).Running })
	})
}

// restart stops the bus with sig (SIGTERM as systemd and package scripts
// do, SIGKILL as a crash does), keeps it down for down, and starts it
// again at the same address.
func (c *chaos) restart(sig syscall.Signal, down time.Duration) {
	c.t.Helper()
	c.restarts++
	c.t.Logf("restart %d: %v, down %s", c.restarts, sig, down.Round(time.Millisecond))
	if sig == syscall.SIGKILL {
		c.bus.Kill()
	} else {
		c.bus.Stop()
	}
	// The length of the outage is what is tested, not a wait for
	// something to happen.
	time.Sleep(down)
	c.bus.Start()
	c.id = busID(c.t, c.bus.Address())
}

// busID asks the bus at address for its instance id. (The guid in the
// address the daemon prints is its listening socket's, not the bus id.)
func busID(t *testing.T, address string) string {
	t.Helper()
	conn, err := dbus.Connect(address)
	if err != nil {
		t.Fatalf("connect to %s: %v", address, err)
	}
	defer conn.Close()
	var id string
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil {
		t.Fatalf("GetId: %v", err)
	}
	return id
}

// randomRestart restarts with a random signal and 0–1.5 s down.
func (c *chaos) randomRestart() {
	c.t.Helper()
	sig := syscall.SIGTERM
	if c.rng.IntN(2) == 0 {
		sig = syscall.SIGKILL
	}
	c.restart(sig, time.Duration(c.rng.Int64N(int64(1500*time.Millisecond))))
}

// settled waits until busmedic has ended the recovery of the bus now up
// and every app is on it, then checks that each runs exactly once and
// that busmedic run is alive.
func (c *chaos) settled(after string) control.Status {
	c.t.Helper()
	st := c.await("every app back on bus "+c.id+" after "+after, func(st control.Status) bool {
		id := sessionID(st)
		if id != c.id || st.LastRecovery == nil || st.LastRecovery.ID != id || st.LastRecovery.Ended.IsZero() {
			return false
		}
		for _, a := range c.apps {
			if !app(st, a.id).Running {
				return false
			}
		}
		return true
	})
	for _, j := range st.LastRecovery.Jobs {
		if j.Outcome == control.Failed || j.Outcome == control.Skipped {
			c.t.Errorf("after %s: %s %s: %s", after, j.App, j.Outcome, j.Reason)
		}
	}
	for _, a := range c.apps {
		if pids := busProcesses(c.bus.Address(), "-name\x00"+a.name+"\x00"); len(pids) != 1 {
			c.t.Errorf("after %s: %s runs as %d processes %v, want one", after, a.id, len(pids), pids)
		}
	}
	c.alive(after)
	return st
}

// TestChaos restarts the session bus under the real busmedic run at the
// awkward moments: during its start-up, while the recovery summary waits
// for a notification server or is open on one that keeps it, while the
// update question waits, during an app's grace, during a relaunch, during
// a rules reload, and ten times within two seconds; with SIGTERM and
// SIGKILL and 0–1.5 s down. It fails on any exit of the daemon (a panic
// fails every session test), any app not back, and any app running twice.
func TestChaos(t *testing.T) {
	// The distribution's session configuration, except where the test
	// needs a bus with no notification server that D-Bus could start
	// (Debian's dunst is activatable there).
	stock := []bustest.Option{bustest.Stock()}
	t.Run("start-up", func(t *testing.T) {
		c := newChaos(t, chaosApps, stock...)
		c.start()
		c.randomRestart() // busmedic is still connecting and listing peers
		c.startApps()
		c.awaitApps()
		c.randomRestart()
		c.settled("a restart once started")
	})
	t.Run("summary waits for a notification server", func(t *testing.T) {
		c := newChaos(t, chaosApps)
		c.begin()
		// Each recovery's summary waits: there is no server.
		summaries := 0
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
			c.randomRestart()
			c.settled("a restart")
			summaries++
			c.waitLogCount("waiting for a notification server", summaries)
			c.restart(sig, time.Duration(c.rng.Int64N(int64(1500*time.Millisecond))))
			c.settled(sig.String() + " while the summary waited")
			summaries++
		}
	})
	t.Run("summary open on a server that keeps it", func(t *testing.T) {
		c := newChaos(t, append(slices.Clone(chaosApps), notificationServer), stock...)
		c.begin()
		// The relaunched server writes each notification to its log: one
		// summary per recovery.
		log := filepath.Join(c.dir, "state/busmedic/logs/notifications.log")
		summaries := 0
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
			c.randomRestart()
			c.settled("a restart")
			summaries++
			c.waitFile(log, "testapp: notification", summaries)
			c.restart(sig, time.Duration(c.rng.Int64N(int64(1500*time.Millisecond))))
			c.settled(fmt.Sprintf("%v while summary %d was open", sig, summaries))
			summaries++
		}
	})
	t.Run("update question waits", func(t *testing.T) {
		c := newChaos(t, chaosApps, bustest.CopiedBinary())
		c.begin()
		c.bus.Update()
		c.waitLog("waiting for a notification server")
		c.randomRestart()
		c.settled("a restart while the update question waited")
	})
	t.Run("during grace", func(t *testing.T) {
		c := newChaos(t, chaosApps, stock...)
		c.begin()
		for range 2 {
			c.randomRestart()
			// The deaf app lives on: its job waits out its grace.
			c.await("the deaf app's grace", func(st control.Status) bool {
				r := st.LastRecovery
				return r != nil && r.ID == sessionID(st) && slices.ContainsFunc(r.Jobs, func(j control.Job) bool {
					return j.App == "deaf" && j.Outcome == control.Running
				})
			})
			c.randomRestart()
			c.settled("a restart during grace")
		}
	})
	t.Run("during a relaunch", func(t *testing.T) {
		c := newChaos(t, chaosApps, stock...)
		c.begin()
		for i := range 2 {
			c.randomRestart()
			c.waitLogCount(`msg=started app=exit2`, i+1)
			c.randomRestart()
			c.settled("a restart during a relaunch")
		}
	})
	t.Run("during a rules reload", func(t *testing.T) {
		c := newChaos(t, chaosApps, stock...)
		c.begin()
		path := filepath.Join(c.dir, "config/busmedic/apps.toml")
		for i := range 2 {
			rules, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rules = append(rules, fmt.Sprintf("# edit %d\n", i)...)
			if err := os.WriteFile(path, rules, 0o600); err != nil {
				t.Fatal(err)
			}
			c.randomRestart()
			c.settled("a restart during a rules reload")
		}
	})
	t.Run("ten times within two seconds", func(t *testing.T) {
		c := newChaos(t, chaosApps, stock...)
		c.begin()
		start := time.Now()
		for i := range 10 {
			sig := syscall.SIGTERM
			if i%2 == 1 {
				sig = syscall.SIGKILL
			}
			c.restart(sig, time.Duration(c.rng.Int64N(int64(100*time.Millisecond))))
		}
		t.Logf("10 restarts in %s", time.Since(start).Round(time.Millisecond))
		c.settled("ten restarts in a row")
	})
}

// waitFile waits until the file at path holds text n times.
func (c *chaos) waitFile(path, text string, n int) {
	c.t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		data, _ := os.ReadFile(path)
		if bytes.Count(data, []byte(text)) >= n {
			return
		}
		select {
		case <-tick.C:
		case <-c.exited:
			c.t.Fatalf("busmedic run exited while waiting for %q in %s", text, path)
		case <-timer.C:
			c.t.Fatalf("%q not in %s within %s:\n%s", text, path, deadline, data)
		}
	}
}

// busProcesses returns the live processes whose environment has address as
// the session bus and whose command line holds arg.
func busProcesses(address, arg string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	want := []byte("DBUS_SESSION_BUS_ADDRESS=" + address + "\x00")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte(arg)) {
			out = append(out, pid)
		}
	}
	return out
}

// killBusProcesses ends what the test left on the bus at address: the apps
// busmedic started run in sessions of their own.
func killBusProcesses(address string) {
	for _, pid := range busProcesses(address, "") {
		if pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
