package keep_test

// The keeper lives as long as the session, through every bus restart: what
// it allocates for a restart must be given back.

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"busmedic/watcher/bustest"
)

// leakRestarts is how many restarts TestKeepLeak goes through.
const leakRestarts = 50

// heapSlack is how much the heap in use may grow over leakRestarts
// restarts: the keeper's buffers and maps settle after the first; a leak
// of a connection's state per restart (tens of kB with its buffers) times
// 50 is more.
const heapSlack = 4 << 20

// usage is what the test process holds: the keeper runs in it.
type usage struct {
	goroutines int
	fds        int
	heap       uint64 // HeapInuse after a collection
}

func (u usage) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %.1f MB heap in use", u.goroutines, u.fds, float64(u.heap)/(1<<20))
}

func measure(t testing.TB) usage {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{goroutines: runtime.NumGoroutine(), fds: len(fds), heap: ms.HeapInuse}
}

// settle waits until the process is back to at most want goroutines and
// fds: a connection's goroutines end a moment after it closes, and
// nothing announces it, so this polls, with a deadline.
func settle(t testing.TB, want usage, when string) usage {
	t.Helper()
	var got usage
	if !poll(func() bool {
		got = measure(t)
		return got.goroutines <= want.goroutines && got.fds <= want.fds
	}) {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("%s: %v, want at most %d goroutines and %d fds within %s; goroutines:\n%s",
			when, got, want.goroutines, want.fds, waitLimit, buf[:n])
	}
	return got
}

// TestKeepLeak keeps two apps through 50 restarts in a row, SIGTERM and
// SIGKILL mixed, each answering after every one, and then checks that the
// in-process keeper holds no more goroutines, fds or heap than after the
// first; and, once it has stopped, no more than before it started.
func TestKeepLeak(t *testing.T) {
	bus := bustest.New(t, bustest.Stock())
	rb := newRealBus(t, bus)
	rb.Conn()
	before := measure(t)
	k := startKeeper(t, bus)
	echo := startEcho(t, rb, k.addr, echoName)
	// A GDBus app that owns a name and watches the echo's: a Hello, an
	// AddMatch and a RequestName to replay each time, and name changes to
	// tell.
	app := startGDBus(t, k.addr, "--own", serviceName, "--watch", echoName)
	app.Expect("owned " + serviceName)
	echoOwner := strings.Fields(app.Expect("appeared " + echoName))[2]

	check := func(i int, sig syscall.Signal) {
		t.Helper()
		restart(t, bus, sig)
		k.WaitRestarts(t, i)
		when := fmt.Sprintf("restart %d (%v)", i, sig)
		checkWatcher(t, app, echoName, echoOwner)
		checkKept(t, rb, app, serviceName, os.Getpid())
		checkKept(t, rb, echo, echoName, os.Getpid())
		if err := callEcho(rb, echoName); err != nil {
			t.Fatalf("%s: call to dbus-test-tool echo: %v", when, err)
		}
		var pid uint32
		if err := rb.Call(serviceName, "Pid", &pid); err != nil || int(pid) != app.PID() {
			t.Fatalf("%s: %s answered from pid %d (%v), want %d", when, serviceName, pid, err, app.PID())
		}
		if got := app.Ask("poke "+echoName, "answered", "error"); got != "answered" {
			t.Fatalf("%s: the kept app's call to the kept echo: %q", when, got)
		}
	}
	// The first restart allocates what every later one reuses.
	check(1, syscall.SIGKILL)
	steady := measure(t)
	t.Logf("after the first restart: %v", steady)
	for i := 2; i <= leakRestarts; i++ {
		sig := syscall.SIGTERM
		if i%2 == 1 || i%7 == 0 {
			sig = syscall.SIGKILL
		}
		check(i, sig)
	}
	after := settle(t, steady, fmt.Sprintf("after %d restarts", leakRestarts))
	t.Logf("after %d restarts: %v", leakRestarts, after)
	if after.heap > steady.heap+heapSlack {
		t.Errorf("after %d restarts the heap in use grew from %.1f MB to %.1f MB (slack %d MB)",
			leakRestarts, float64(steady.heap)/(1<<20), float64(after.heap)/(1<<20), heapSlack>>20)
	}
	for _, a := range k.Report().Apps {
		if a.Restarts != leakRestarts {
			t.Errorf("the report says %s (pid %d) was kept through %d restarts, want %d", a.Command, a.PID, a.Restarts, leakRestarts)
		}
	}
	checkStderr(t, app)

	// Stopped, the keeper closes the apps' connections (they exit, as
	// with a bus that went away) and leaves nothing behind.
	k.stop()
	echo.WaitExit()
	app.WaitExit()
	end := settle(t, before, "after the keeper stopped")
	t.Logf("before the keeper: %v; after it stopped: %v", before, end)
}
