package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

const deadline = 20 * time.Second

var built struct {
	once sync.Once
	path string
	out  []byte
	err  error
}

// busmedicBinary builds the command once per test binary, with cgo off as it
// ships.
func busmedicBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "busmedic-bin")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "busmedic")
		cmd := exec.Command("go", "build", "-o", built.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		built.out, built.err = cmd.CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("build busmedic with CGO_ENABLED=0: %v\n%s", built.err, built.out)
	}
	return built.path
}

func TestWatchJSON(t *testing.T) {
	bus := bustest.New(t)
	app := bus.StartApp("-name", "org.example.Dunst")

	cmd := exec.Command(busmedicBinary(t), "watch", "--json", "--bus", bus.Address())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })

	type line struct {
		raw   map[string]any
		event watcher.Event
	}
	lines := make(chan line)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l.raw); err != nil {
				t.Errorf("line %q is not JSON: %v", sc.Text(), err)
				return
			}
			if err := json.Unmarshal(sc.Bytes(), &l.event); err != nil {
				t.Errorf("line %q is not an event: %v", sc.Text(), err)
				return
			}
			lines <- l
		}
	}()
	next := func(kind string) line {
		t.Helper()
		timer := time.NewTimer(deadline)
		defer timer.Stop()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("busmedic watch ended before a %q event", kind)
				}
				for _, key := range []string{"time", "bus", "event", "id"} {
					if _, ok := l.raw[key]; !ok {
						t.Errorf("line %v lacks %q", l.raw, key)
					}
				}
				if l.raw["event"] == kind {
					return l
				}
			case <-timer.C:
				t.Fatalf("no %q event within %s", kind, deadline)
			}
		}
	}

	up := next("up")
	if _, err := time.Parse(time.RFC3339Nano, up.raw["time"].(string)); err != nil {
		t.Errorf("time %q is not RFC 3339: %v", up.raw["time"], err)
	}
	// The inventory follows "up"; kill the bus once it has listed the app.
	for {
		if j := next("peer-joined"); j.event.Peer != nil && j.event.Peer.PID == app.PID() {
			break
		}
	}
	bus.Kill()
	down := next("down")
	var found bool
	for _, p := range down.event.Peers {
		if p.PID == app.PID() {
			found = p.Owns("org.example.Dunst") && len(p.Argv) > 0 && p.Exe != ""
		}
	}
	if !found {
		t.Errorf("down event does not list pid %d with its exe, argv and name: %v", app.PID(), down.raw["peers"])
	}
	bus.Start()
	restarted := next("restarted")
	if restarted.event.OldID != up.event.ID || restarted.event.ID == up.event.ID {
		t.Errorf("restarted %v, want old id %s", restarted.raw, up.event.ID)
	}

	// Ctrl-C ends it with status 0.
	cmd.Process.Signal(syscall.SIGINT)
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("busmedic watch after SIGINT: %v, want exit 0", err)
	}
}

func TestWatchText(t *testing.T) {
	bus := bustest.New(t)
	cmd := exec.Command(busmedicBinary(t), "watch", "--bus", bus.Address())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	sc := bufio.NewScanner(out)
	got := make(chan string, 1)
	go func() {
		if sc.Scan() {
			got <- sc.Text()
		}
		close(got)
	}()
	select {
	case l := <-got:
		if !strings.Contains(l, " up id=") || !strings.Contains(l, bus.Address()) {
			t.Errorf("first line %q, want a readable up line naming the bus", l)
		}
	case <-time.After(deadline):
		t.Fatal("no output")
	}
}

// TestWatchSameBusTwice: a bus named twice, as --bus session --bus session
// or by its name and its address, is watched once: each event is printed
// once. An app joins, the bus is killed and started again; the app (which
// exits with its bus) joined once, and the bus went down once, with "1 peer"
// said in the singular.
func TestWatchSameBusTwice(t *testing.T) {
	bus := bustest.New(t)
	cmd := exec.Command(busmedicBinary(t), "watch", "--bus", "session", "--bus", "session", "--bus", bus.Address())
	cmd.Env = append(bus.Env(), "DBUS_SESSION_BUS_ADDRESS="+bus.Address())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var seen []string
	await := func(what string) {
		t.Helper()
		timer := time.NewTimer(deadline)
		defer timer.Stop()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("watch ended before %q:\n%s", what, strings.Join(seen, "\n"))
				}
				seen = append(seen, l)
				if strings.Contains(l, what) {
					return
				}
			case <-timer.C:
				t.Fatalf("no %q within %s:\n%s", what, deadline, strings.Join(seen, "\n"))
			}
		}
	}
	await(" up id=")
	app := bus.StartApp("-name", "org.example.Once")
	joined := fmt.Sprintf("peer-joined testapp[%d]", app.PID())
	await(joined)
	bus.Kill()
	await(" down: ")
	bus.Start()
	await(" restarted ")
	// A second watcher would have said all this by now, long after the
	// first did; one more event shows what came meanwhile.
	bus.StartApp("-name", "org.example.Later")
	await("org.example.Later")
	cmd.Process.Signal(syscall.SIGINT)
	for l := range lines {
		seen = append(seen, l)
	}
	count := func(s string) (n int) {
		for _, l := range seen {
			if strings.Contains(l, s) {
				n++
			}
		}
		return n
	}
	if count(joined) != 1 || count(" down: ") != 1 || count(" restarted ") != 1 || count(" up id=") > 2 {
		t.Errorf("events printed more than once:\n%s", strings.Join(seen, "\n"))
	}
	if count("; 1 peer was connected: testapp") != 1 {
		t.Errorf("the down event does not say \"1 peer was connected\":\n%s", strings.Join(seen, "\n"))
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"help"}, exitOK, "watch"},
		{[]string{"help", "watch"}, exitOK, "--json"},
		{[]string{}, exitUsage, "Usage"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"watch", "--bus", "bogus:x=1"}, exitUsage, `bogus:x=1`},
		{[]string{"watch", "--nope"}, exitUsage, "-nope"},
	} {
		var stdout, stderr strings.Builder
		status := run(t.Context(), tc.args, &stdout, &stderr)
		if status != tc.status || !strings.Contains(stdout.String()+stderr.String(), tc.want) {
			t.Errorf("busmedic %q = %d, output:\n%s%s\nwant status %d and %q", tc.args, status, stdout.String(), stderr.String(), tc.status, tc.want)
		}
	}
}
