// Command namewait times a session bus restart from inside a systemd user
// session, for BenchmarkSystemdRecovery: it restarts the bus unit with
// systemctl --user, optionally starts units right after it (the baseline:
// systemd alone on a fresh bus), connects to the new bus as soon as it
// answers, and waits until every given name is owned on it. Every time is
// measured from the moment just before the restart command is run, on the
// monotonic clock of one process; nothing sleeps to synchronise.
//
//	namewait -names a,b,c [-start x.service,y.service] [-restart dbus.service] [-timeout 60s]
//
// It prints one JSON object (Result) on standard output, and exits 1 with
// the reason on standard error if a command fails or a name is not owned
// within the timeout.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// Result is what namewait prints. Durations are from Start.
type Result struct {
	// Start is the wall clock just before the restart command ran (Unix
	// nanoseconds), for comparison with the times busmedic reports.
	Start int64 `json:"start_unix_ns"`
	// Restarted is when systemctl restart returned: the new bus daemon
	// has told systemd it is ready (the unit is Type=notify).
	Restarted time.Duration `json:"restarted_ns"`
	// Connected is when namewait's connection to the new bus was
	// authenticated and had its unique name (Hello answered).
	Connected time.Duration `json:"connected_ns"`
	// Names has, for each name, when it was first seen owned on the new
	// bus (and not lost again before all were owned).
	Names map[string]time.Duration `json:"names_ns"`
	// All is when the last name was owned: the latest of Names.
	All time.Duration `json:"all_ns"`
	// UnitsStarted is when systemctl start returned, with -start.
	UnitsStarted time.Duration `json:"units_started_ns,omitempty"`
}

func main() {
	names := flag.String("names", "", "comma-separated bus names to wait for on the new bus")
	start := flag.String("start", "", "comma-separated user units to start right after the restart")
	restart := flag.String("restart", "dbus.service", "user unit of the session bus, restarted first")
	timeout := flag.Duration("timeout", time.Minute, "give up after this long")
	flag.Parse()
	if *names == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: namewait -names a,b,c [-start x.service,...] [-restart dbus.service] [-timeout 60s]")
		os.Exit(2)
	}
	res, err := run(strings.Split(*names, ","), split(*start), *restart, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "namewait: %v\n", err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func run(names, units []string, restartUnit string, timeout time.Duration) (*Result, error) {
	addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	if addr == "" {
		return nil, errors.New("DBUS_SESSION_BUS_ADDRESS is not set")
	}
	res := &Result{Names: map[string]time.Duration{}}
	t0 := time.Now()
	res.Start = t0.UnixNano()
	deadline := t0.Add(timeout)

	if out, err := exec.Command("systemctl", "--user", "restart", restartUnit).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("systemctl --user restart %s: %v\n%s", restartUnit, err, out)
	}
	res.Restarted = time.Since(t0)

	// The units start while we connect: systemd, not namewait, is timed.
	var startDone chan error
	if len(units) > 0 {
		var out bytes.Buffer
		cmd := exec.Command("systemctl", append([]string{"--user", "start", "--"}, units...)...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("systemctl --user start: %v", err)
		}
		startDone = make(chan error, 1)
		go func() {
			err := cmd.Wait()
			if err != nil {
				err = fmt.Errorf("systemctl --user start %s: %v\n%s", strings.Join(units, " "), err, out.Bytes())
			}
			res.UnitsStarted = time.Since(t0) // read after startDone
			startDone <- err
		}()
	}

	conn, err := connect(addr, deadline)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	res.Connected = time.Since(t0)

	// Subscribe before asking, so that no change falls between the two.
	signals := make(chan *dbus.Signal, 256)
	conn.Signal(signals)
	if err := conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchInterface("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged")); err != nil {
		return nil, fmt.Errorf("subscribe to NameOwnerChanged: %w", err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	// Ask for every name at once; signals that arrive meanwhile count too.
	calls := make([]*dbus.Call, len(names))
	for i, n := range names {
		calls[i] = conn.BusObject().Go("org.freedesktop.DBus.NameHasOwner", 0, nil, n)
	}
	pending := len(calls)
	done := func() bool { return pending == 0 && len(res.Names) == len(want) }
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for !done() {
		// The first pending call, if any: the answers come in order.
		var next <-chan *dbus.Call
		if pending > 0 {
			next = calls[len(calls)-pending].Done
		}
		select {
		case c := <-next:
			i := len(calls) - pending
			pending--
			var owned bool
			if err := c.Store(&owned); err != nil {
				return nil, fmt.Errorf("NameHasOwner %s: %w", names[i], err)
			}
			if _, seen := res.Names[names[i]]; owned && !seen {
				res.Names[names[i]] = time.Since(t0)
			}
		case s, ok := <-signals:
			if !ok {
				return nil, errors.New("the new bus went away")
			}
			var name, oldOwner, newOwner string
			if s.Name != "org.freedesktop.DBus.NameOwnerChanged" || dbus.Store(s.Body, &name, &oldOwner, &newOwner) != nil || !want[name] {
				continue
			}
			if newOwner == "" {
				delete(res.Names, name) // lost again: wait for its next owner
			} else if _, seen := res.Names[name]; !seen {
				res.Names[name] = time.Since(t0)
			}
		case <-timer.C:
			var missing []string
			for _, n := range names {
				if _, ok := res.Names[n]; !ok {
					missing = append(missing, n)
				}
			}
			return nil, fmt.Errorf("not owned within %s: %s", timeout, strings.Join(missing, ", "))
		}
	}
	for _, d := range res.Names {
		res.All = max(res.All, d)
	}
	if startDone != nil {
		if err := <-startDone; err != nil {
			return nil, err
		}
	}
	return res, nil
}

// connect connects to the bus at addr, authenticated and with its unique
// name, retrying with a short backoff while the bus does not answer yet.
// The session bus socket is systemd's (dbus.socket) and stays open across
// the restart: a connection made now waits in its backlog for the new
// daemon, so the retries only cover a refused or failed handshake.
func connect(addr string, deadline time.Time) (*dbus.Conn, error) {
	backoff := time.Millisecond
	for {
		conn, err := dbus.Connect(addr)
		if err == nil {
			return conn, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("connect to the session bus %s: %w", addr, err)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 10*time.Millisecond)
	}
}
