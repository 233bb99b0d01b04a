package e2e

import (
	"context"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"busmedic/assets"
	"busmedic/relaunch/control"
)

// BenchmarkSession measures, for each desktop of TestSession, what a user
// sees after a session bus restart: the time from the new bus accepting
// connections to the panel back with busmedic's item visible (panelBack:
// the watcher is the new panel's, or the new kded5's; busmedic's item is
// registered with it; a host is registered, and a named host is the new
// one), beside the same panel started directly on a fresh bus in the same
// run. Each iteration restarts the bus twice, with SIGTERM in even
// iterations and SIGKILL in odd ones:
//
//   - floor: busmedic is paused (its jobs end skipped); the old programs
//     are gone (a deaf one killed by the benchmark, untimed), and once the
//     bus is back the benchmark starts the desktop's programs itself, all
//     at once, as a user would by hand;
//   - recovery: busmedic brings them back by the rules its first run
//     offers for the session, stopping the deaf ones first.
//
// busmedic's tray reconnects by itself in both. Before each restart the
// desktop is settled (TestSession's restart) and busmedic's tray has run
// trayStable: the tray restarts at once after a lost bus only when it had
// run that long (tray.busStableAfter), else it backs off as a failing one
// does, which users whose bus restarts once in a while never see. The
// wait is that spacing, not a synchronisation.
//
// Metrics: ms/floor-p50 and ms/recovery-p50 are medians; ratio-p50 is the
// median of each iteration's recovery / floor (the two halves run seconds
// apart); ms/floor, ms/recovery and ratio are means. ms/old-exit-p50, for
// a desktop with deaf programs, is when the last old copy busmedic stopped
// had exited (busmedic starts a program again only then; the floor's were
// killed before the bus came back). ns/op means nothing here and is left
// out. With -v each iteration is logged.
//
//	go test -run '^$' -bench BenchmarkSession -benchtime 10x -timeout 1h ./test/e2e
func BenchmarkSession(b *testing.B) {
	bin := buildBusmedic(b)
	for _, d := range desktops() {
		b.Run(d.name, func(b *testing.B) {
			s := startSession(b, d, bin)
			var floors, recoveries, ratios, oldExits []time.Duration
			b.ResetTimer()
			for i := range b.N {
				sig := syscall.SIGKILL
				if i%2 == 0 {
					sig = syscall.SIGTERM
				}
				f := s.floor(sig)
				r, oldExit := s.recovery(sig)
				floors, recoveries, oldExits = append(floors, f), append(recoveries, r), append(oldExits, oldExit)
				ratios = append(ratios, time.Duration(float64(r)/float64(f)*1e6)) // in millionths
				if testing.Verbose() {
					b.Logf("%s %s: floor %s, recovery %s", d.name, sigName(sig), f.Round(time.Millisecond), r.Round(time.Millisecond))
				}
			}
			b.StopTimer()
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(msMedian(floors), "ms/floor-p50")
			b.ReportMetric(msMedian(recoveries), "ms/recovery-p50")
			b.ReportMetric(msMedian(ratios), "ratio-p50")
			b.ReportMetric(msMean(floors), "ms/floor")
			b.ReportMetric(msMean(recoveries), "ms/recovery")
			b.ReportMetric(msMean(recoveries)/msMean(floors), "ratio")
			if slices.ContainsFunc(s.apps, func(a sessionApp) bool { return a.Behaviour == assets.Deaf }) {
				b.ReportMetric(msMedian(oldExits), "ms/old-exit-p50")
			}
		})
	}
}

// trayStable is tray.busStableAfter, with a margin.
const trayStable = 10*time.Second + 500*time.Millisecond

// floor restarts the bus with busmedic paused and starts the desktop's
// programs directly; it returns the time from the new bus to the panel
// back with busmedic's item.
func (s *session) floor(sig syscall.Signal) time.Duration {
	s.t.Helper()
	s.trayStable()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := s.client.Pause(ctx); err != nil {
		s.t.Fatalf("pause: %v", err)
	}
	t0, old := s.restart(sig, true)
	for _, a := range s.apps {
		s.startDirect(a)
	}
	back := s.until("the panel started directly, with busmedic's item", startLimit, func() error { return s.panelBack(old) })
	s.until("the paused recovery's end", waitLimit, func() error {
		r, err := s.lastRecovery(t0)
		if err == nil && slices.ContainsFunc(r.Jobs, func(j control.Job) bool { return j.Outcome != control.Skipped }) {
			s.t.Fatalf("floor: jobs %+v, want all skipped (paused)", r.Jobs)
		}
		return err
	})
	if err := s.client.Resume(ctx); err != nil {
		s.t.Fatalf("resume: %v", err)
	}
	s.checkRecovered(t0, old, false)
	return back.Sub(t0)
}

// recovery restarts the bus and lets busmedic bring the desktop back; it
// returns the time from the new bus to the panel back with busmedic's
// item, and to the exit of the last deaf old copy busmedic stopped (0
// when the desktop has none).
func (s *session) recovery(sig syscall.Signal) (took, oldExit time.Duration) {
	s.t.Helper()
	s.trayStable()
	t0, old := s.restart(sig, false)
	var deaf []proc
	for _, a := range s.apps {
		if a.Behaviour == assets.Deaf {
			deaf = append(deaf, old.apps[a.ID])
		}
	}
	exits := watchExits(deaf)
	back := s.until("the panel back with busmedic's item", startLimit, func() error { return s.panelBack(old) })
	s.checkRecovered(t0, old, true)
	for _, at := range exits() {
		oldExit = max(oldExit, at.Sub(t0))
	}
	if testing.Verbose() {
		// Where the time went, from busmedic's history: when it took the
		// restart, and when each job began and ended.
		r, err := s.lastRecovery(t0)
		if err == nil {
			ms := func(t time.Time) string { return t.Sub(t0).Round(time.Millisecond).String() }
			line := "busmedic took the restart at " + ms(r.Started)
			for _, j := range r.Jobs {
				line += "; " + j.App + " " + ms(j.Started) + ".." + ms(j.Started.Add(j.Took))
			}
			if len(deaf) > 0 {
				line += "; the deaf old copies had exited at " + ms(t0.Add(oldExit))
			}
			s.t.Logf("%s %s: %s", s.d.name, sigName(sig), line)
		}
	}
	return back.Sub(t0), oldExit
}

// watchExits notes when each of procs exits; the function it returns
// waits for every exit and returns the times.
func watchExits(procs []proc) func() []time.Time {
	at := make([]time.Time, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		fd, err := unix.PidfdOpen(p.pid, 0)
		if err != nil || !p.alive() {
			if err == nil {
				unix.Close(fd)
			}
			at[i] = time.Now()
			continue
		}
		wg.Go(func() {
			defer unix.Close(fd)
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			for {
				if _, err := unix.Poll(fds, int(startLimit/time.Millisecond)); err != unix.EINTR {
					break
				}
			}
			at[i] = time.Now()
		})
	}
	return func() []time.Time { wg.Wait(); return at }
}

// trayStable waits until busmedic's tray child has run trayStable.
func (s *session) trayStable() {
	s.t.Helper()
	for _, pid := range children(s.daemon.Process.Pid) {
		if argv := argvOf(pid); len(argv) > 1 && argv[1] == "tray" {
			p, err := procOf(pid)
			if err != nil {
				break
			}
			if wait := trayStable - p.age(); wait > 0 {
				<-time.After(wait)
			}
			return
		}
	}
	s.t.Fatal("busmedic's tray is not running")
}

func msMean(ds []time.Duration) float64 {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return float64(sum) / float64(len(ds)) / 1e6
}

func msMedian(ds []time.Duration) float64 {
	s := slices.Sorted(slices.Values(ds))
	n := len(s)
	return float64(s[(n-1)/2]+s[n/2]) / 2 / 1e6
}
