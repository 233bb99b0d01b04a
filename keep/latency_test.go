package keep

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/watcher/bustest"
)

// rawClient is a minimal D-Bus client: no goroutines of its own, so a
// round trip measures the path, not the client.
type rawClient struct {
	s      *sock
	serial uint32
}

func dialRaw(t testing.TB, addr string) *rawClient {
	nc, err := dialBus(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := newSock(nc)
	nc.Write([]byte("\x00AUTH EXTERNAL " + hex.EncodeToString([]byte(strconv.Itoa(os.Getuid()))) + "\r\n"))
	if l, err := s.readLine(); err != nil || !strings.HasPrefix(l, "OK") {
		t.Fatal(l, err)
	}
	nc.Write([]byte("BEGIN\r\n"))
	c := &rawClient{s: s}
	c.roundTrip(t, appendMessage(nil, typeMethodCall, 0, 1, &fields{path: "/org/freedesktop/DBus", iface: busName, member: "Hello", dest: busName}, nil))
	t.Cleanup(func() { nc.Close() })
	return c
}

func (c *rawClient) roundTrip(t testing.TB, msg []byte) {
	c.serial++
	putU32(msg[8:], false, c.serial)
	if _, err := c.s.c.Write(msg); err != nil {
		t.Fatal(err)
	}
	var h header
	for {
		m, _, err := c.s.next()
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			if err := c.s.fill(true); err != nil {
				t.Fatal(err)
			}
			continue
		}
		parseHeader(m, &h)
		if (h.typ == typeMethodReturn || h.typ == typeError) && h.replySerial == c.serial {
			if h.typ == typeError {
				t.Fatalf("error %s", h.errName.str(m))
			}
			return
		}
	}
}

// startXdgProxy runs xdg-dbus-proxy (no filtering) in front of the bus
// and returns its address once it listens, and its pid.
func startXdgProxy(t testing.TB, busAddr string) (string, int) {
	path := filepath.Join(t.TempDir(), "xdg.sock")
	ready, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("xdg-dbus-proxy", "--fd=3", busAddr, path)
	cmd.ExtraFiles = []*os.File{w}
	err = cmd.Start()
	w.Close()
	if err != nil {
		t.Skipf("xdg-dbus-proxy: %v", err)
	}
	// It stops when the other end of the fd it was given closes.
	t.Cleanup(func() { ready.Close(); cmd.Wait() })
	ready.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := ready.Read(make([]byte, 1)); err != nil {
		t.Fatalf("xdg-dbus-proxy not ready: %v", err)
	}
	return "unix:path=" + path, cmd.Process.Pid
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time process pid has used, in clock ticks of 10ms.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	u, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(u+st) * 10 * time.Millisecond
}

// startEcho runs dbus-test-tool echo (libdbus, answers every call) as
// name and waits for it to own the name.
func startEcho(t testing.TB, bus *bustest.Bus, name string) {
	watcher, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	signals := make(chan *dbus.Signal, 10)
	watcher.Signal(signals)
	if err := watcher.AddMatchSignal(dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, name)); err != nil {
		t.Fatal(err)
	}
	echo := exec.Command("dbus-test-tool", "echo", "--name="+name)
	echo.Env = bus.Env()
	if err := echo.Start(); err != nil {
		t.Skipf("dbus-test-tool: %v", err)
	}
	t.Cleanup(func() { echo.Process.Kill(); echo.Wait() })
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case <-signals:
	case <-timer.C:
		t.Fatal("dbus-test-tool echo did not take its name")
	}
}

func pct(d []time.Duration, p float64) time.Duration {
	return d[int(float64(len(d)-1)*p)]
}

// TestLatencyReport measures the latency of small round trips, direct,
// through the keeper and through xdg-dbus-proxy, to the bus driver (GetId)
// and to a peer (dbus-test-tool echo), with a client that has no
// goroutines of its own, so that the numbers are the paths'. It is a
// measuring tool for people: KEEP_LATENCY=N runs it with N round trips
// each and logs percentiles and ratios.
func TestLatencyReport(t *testing.T) {
	n := 0
	fmt.Sscan(os.Getenv("KEEP_LATENCY"), &n)
	if n == 0 {
		t.Skip("KEEP_LATENCY not set")
	}
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	startEcho(t, bus, "org.example.Svc")
	xdg, xdgPID := startXdgProxy(t, bus.Address())
	paths := map[string]string{"direct": bus.Address(), "keeper": tk.addr, "xdg": xdg}
	order := []string{"direct", "keeper", "xdg"}
	for _, target := range []string{"driver", "peer"} {
		clients := map[string]*rawClient{}
		for _, p := range order {
			clients[p] = dialRaw(t, paths[p])
		}
		f := &fields{path: "/org/freedesktop/DBus", iface: busName, member: "GetId", dest: busName}
		if target == "peer" {
			f = &fields{path: string(pingPath), iface: pingIface, member: "Ping", dest: "org.example.Svc"}
		}
		msg := appendMessage(nil, typeMethodCall, 0, 1, f, nil)
		res := map[string][]time.Duration{}
		cpu := map[string]time.Duration{}
		// Interleave rounds so drift hits all alike.
		for round := 0; round < 10; round++ {
			for _, p := range order {
				c := clients[p]
				self, proxy := selfCPU(), procCPU(xdgPID)
				for i := 0; i < n/10; i++ {
					start := time.Now()
					c.roundTrip(t, msg)
					res[p] = append(res[p], time.Since(start))
				}
				if p == "xdg" {
					cpu[p] += procCPU(xdgPID) - proxy
				} else {
					cpu[p] += selfCPU() - self
				}
			}
		}
		var lines []string
		p50 := map[string]time.Duration{}
		for _, p := range order {
			d := res[p]
			slices.Sort(d)
			p50[p] = pct(d, 0.5)
			lines = append(lines, fmt.Sprintf("%-7s p50 %6.1fµs p90 %6.1fµs p99 %6.1fµs", p,
				float64(pct(d, 0.5).Nanoseconds())/1000, float64(pct(d, 0.9).Nanoseconds())/1000, float64(pct(d, 0.99).Nanoseconds())/1000))
		}
		// Per message through the proxy (a round trip is two): the
		// keeper's is this process's CPU beyond the client's alone.
		perMsg := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / float64(2*n) }
		t.Logf("%s (%d round trips each)\n%s\nkeeper/direct %.2f  xdg/direct %.2f  keeper/xdg %.2f\n"+
			"CPU per message: keeper %.1fµs, xdg-dbus-proxy %.1fµs", target, n,
			strings.Join(lines, "\n"), float64(p50["keeper"])/float64(p50["direct"]),
			float64(p50["xdg"])/float64(p50["direct"]), float64(p50["keeper"])/float64(p50["xdg"]),
			perMsg(cpu["keeper"]-cpu["direct"]), perMsg(cpu["xdg"]))
	}
}
