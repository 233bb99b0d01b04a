package systemd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/test/systemdtest"
)

// BenchmarkSystemdRecovery measures issue 16's benchmark: the time from
// `systemctl --user restart dbus.service` to every app back on the new bus,
// beside the same units started by systemd alone on a fresh bus, in the same
// run. Goal: at most 1.1x.
//
// The session is the test's (startSession): the six apps of sessionApps in
// their user units, busmedic in busmedic.service, for dbus-daemon and for
// dbus-broker. The rules keep busmedic's default grace (2 s), as a user's
// would: rules add-from-pid and the editor write none.
//
// Each iteration times two halves, both with namewait
// (internal/namewait), a small program that runs in the container as the
// user, so that no time is spent entering the container while the clock
// runs. It starts its clock, runs `systemctl --user restart dbus.service`
// (which returns once the new daemon is ready: the unit is Type=notify), then
// connects to the new bus, subscribes to NameOwnerChanged, asks NameHasOwner
// for every app's name, and stops each app's clock when its name is owned.
// The restart call is inside the clock in both halves alike.
//
//   - busmedic: every unit runs and busmedic sees every app; namewait
//     restarts the bus; busmedic brings the apps back through the user
//     manager.
//   - baseline: the units are stopped first (busmedic then has nothing to
//     recover; it stays running, so that both halves share its load);
//     namewait restarts the bus and at once runs `systemctl --user start`
//     with every unit, then connects as above: systemd alone on a fresh bus.
//
// Between the halves, untimed, the benchmark waits for busmedic's recovery
// to end with every job recovered (or, after the baseline, with none), and
// resets the manager's start limits (`systemctl --user reset-failed`: two
// bus restarts and up to three starts of a unit per iteration would reach
// StartLimitBurst).
//
// Metrics, in ms from the restart order: ms/busmedic and ms/baseline are
// means of the time to every name back, and ratio their quotient; ratio-p50
// is the median of each iteration's busmedic / baseline. The -exited
// variants count only the five apps whose processes end with the bus (or
// that systemd stops: deaf-dbus): busmedic skips the grace for those. The
// sixth, deaf-simple, stays alive and deaf in a unit systemd leaves running;
// busmedic cannot tell it from an app about to reconnect, so it waits out
// the rule's grace: the rules here are those of a user who knows the apps,
// and give an app known to stay deaf none (grace = "0s"); with the default
// grace the all-apps figures would be that grace plus a restart of its unit.
// ms/busmedic-ended is when busmedic's recovery ended (its own clock, the
// same wall clock). Where busmedic's time goes, as medians: ms/restart-p50,
// the restart call (both halves); ms/engine-p50, when the engine took the
// restart (its watcher reconnected); ms/connected-p50, when namewait was
// connected. ns/op means nothing here and is left out. The log has each
// app's median time back in both halves; with -v, every iteration too.
//
//	go test -run '^$' -bench BenchmarkSystemdRecovery -benchtime 5x ./test/systemd
func BenchmarkSystemdRecovery(b *testing.B) {
	// knownApps are the apps with rules as a user who knows them writes
	// them (the catalog's way): an app known to stay deaf gets no grace,
	// since it never reconnects by itself.
	knownApps := func() []app {
		apps := slices.Clone(sessionApps)
		for i := range apps {
			if apps[i].outlives {
				apps[i].grace = "0s"
			}
		}
		return apps
	}
	for _, impl := range []systemdtest.Bus{systemdtest.Daemon, systemdtest.Broker} {
		b.Run(string(impl), func(b *testing.B) {
			s := startSession(b, impl, knownApps(), sessionOptions{binds: map[string]string{
				namewaitPath: systemdtest.Build(b, "busmedic/test/systemd/internal/namewait")}})
			benchRecovery(b, s)
		})
	}
}

// namewaitPath is where the container has namewait.
const namewaitPath = "/usr/local/bin/namewait"

// nameTimes is namewait's output (its Result).
type nameTimes struct {
	Start        int64                    `json:"start_unix_ns"`
	Restarted    time.Duration            `json:"restarted_ns"`
	Connected    time.Duration            `json:"connected_ns"`
	Names        map[string]time.Duration `json:"names_ns"`
	All          time.Duration            `json:"all_ns"`
	UnitsStarted time.Duration            `json:"units_started_ns"`
}

// half is one timed half of an iteration.
type half struct {
	nameTimes
	// exited is when the last of the apps that end with the bus was back.
	exited time.Duration
	// engine and ended are, for busmedic's half, when busmedic's engine
	// took the restart and when its recovery ended.
	engine, ended time.Duration
}

func benchRecovery(b *testing.B, s *session) {
	units := make([]string, len(s.apps))
	for i, a := range s.apps {
		units[i] = a.unit
	}
	var with, without []half
	b.ResetTimer()
	for i := range b.N {
		w := s.busmedicHalf()
		wo := s.baselineHalf(units)
		with, without = append(with, w), append(without, wo)
		if !testing.Verbose() {
			continue // the testing package keeps ten lines of a benchmark's log
		}
		b.Logf("iteration %d: busmedic %s (exited %s, ended %s), baseline %s (exited %s); per app (busmedic / baseline): %s",
			i, ms(w.All), ms(w.exited), ms(w.ended), ms(wo.All), ms(wo.exited), s.perApp(w, wo))
	}
	b.StopTimer()

	get := func(hs []half, f func(half) time.Duration) []time.Duration {
		ds := make([]time.Duration, len(hs))
		for i, h := range hs {
			ds[i] = f(h)
		}
		return ds
	}
	all := func(h half) time.Duration { return h.All }
	exited := func(h half) time.Duration { return h.exited }
	ratios := func(f func(half) time.Duration) []float64 {
		rs := make([]float64, len(with))
		for i := range with {
			rs[i] = float64(f(with[i])) / float64(f(without[i]))
		}
		return rs
	}
	b.ReportMetric(0, "ns/op") // two halves and the waits between: meaningless
	b.ReportMetric(mean(get(with, all)), "ms/busmedic")
	b.ReportMetric(mean(get(without, all)), "ms/baseline")
	b.ReportMetric(mean(get(with, all))/mean(get(without, all)), "ratio")
	b.ReportMetric(median(ratios(all)), "ratio-p50")
	b.ReportMetric(mean(get(with, exited)), "ms/busmedic-exited")
	b.ReportMetric(mean(get(without, exited)), "ms/baseline-exited")
	b.ReportMetric(mean(get(with, exited))/mean(get(without, exited)), "ratio-exited")
	b.ReportMetric(median(ratios(exited)), "ratio-exited-p50")
	b.ReportMetric(mean(get(with, func(h half) time.Duration { return h.ended })), "ms/busmedic-ended")
	b.ReportMetric(msMedian(get(append(slices.Clone(with), without...), func(h half) time.Duration { return h.Restarted })), "ms/restart-p50")
	b.ReportMetric(msMedian(get(with, func(h half) time.Duration { return h.engine })), "ms/engine-p50")
	b.ReportMetric(msMedian(get(with, func(h half) time.Duration { return h.Connected })), "ms/connected-p50")
	var medians []string
	for _, a := range s.apps {
		name := func(h half) time.Duration { return h.Names[a.name] }
		medians = append(medians, fmt.Sprintf("%s %.1f / %.1f", strings.TrimSuffix(a.unit, ".service"),
			msMedian(get(with, name)), msMedian(get(without, name))))
	}
	b.Logf("medians per app, ms (busmedic / baseline): %s", strings.Join(medians, ", "))
}

// busmedicHalf restarts the bus under busmedic, every app running, and
// times the apps back; then it waits, untimed, for busmedic's recovery to
// end with every job recovered.
func (s *session) busmedicHalf() half {
	s.t.Helper()
	s.m.User.Run("systemctl", "--user", "reset-failed")
	before := s.waitStatus(30*time.Second, "busmedic sees every app before the restart", s.allRunning)
	oldID := bus(before, "session").ID

	h := s.timeRestart(nil)

	st := s.waitStatus(60*time.Second, "busmedic's recovery ended with every app back", func(st control.Status) bool {
		sb := bus(st, "session")
		return sb.Up && sb.ID != oldID && st.LastRecovery != nil &&
			st.LastRecovery.ID == sb.ID && !st.LastRecovery.Ended.IsZero() && s.allRunning(st)
	})
	for _, j := range st.LastRecovery.Jobs {
		if !j.Outcome.Recovered() {
			s.t.Errorf("job %s: %s (%s)", j.App, j.Outcome, j.Reason)
		}
	}
	t0 := time.Unix(0, h.Start)
	h.engine, h.ended = st.LastRecovery.Started.Sub(t0), st.LastRecovery.Ended.Sub(t0)
	return h
}

// baselineHalf stops the units, restarts the bus and starts the units
// again through systemd at once, and times the apps back; then it waits,
// untimed, until busmedic, which had nothing to recover, sees every app.
func (s *session) baselineHalf(units []string) half {
	s.t.Helper()
	s.m.User.Run(append([]string{"systemctl", "--user", "stop", "--"}, units...)...)
	s.m.User.Run("systemctl", "--user", "reset-failed")
	before := s.waitStatus(30*time.Second, "busmedic sees every app stopped", func(st control.Status) bool {
		return bus(st, "session").Up && !slices.ContainsFunc(st.Apps, func(a control.AppStatus) bool { return a.Running })
	})
	oldID := bus(before, "session").ID

	h := s.timeRestart(units)

	st := s.waitStatus(60*time.Second, "busmedic sees every app after the baseline", func(st control.Status) bool {
		sb := bus(st, "session")
		return sb.Up && sb.ID != oldID && st.LastRecovery != nil &&
			st.LastRecovery.ID == sb.ID && !st.LastRecovery.Ended.IsZero() && s.allRunning(st)
	})
	if n := len(st.LastRecovery.Jobs); n > 0 {
		s.t.Errorf("baseline: busmedic ran %d jobs, want none: %+v", n, st.LastRecovery.Jobs)
	}
	return h
}

// timeRestart runs namewait in the container: it restarts the bus, starts
// units after it if any, and reports when every app's name was owned on the
// new bus.
func (s *session) timeRestart(units []string) half {
	s.t.Helper()
	names := make([]string, len(s.apps))
	for i, a := range s.apps {
		names[i] = a.name
	}
	args := []string{"-names", strings.Join(names, ",")}
	if len(units) > 0 {
		args = append(args, "-start", strings.Join(units, ","))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := s.m.User.Command(ctx, namewaitPath, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("namewait %s: %v\n%s%s\nbusmedic's journal:\n%s", strings.Join(args, " "), err, out, stderr.Bytes(),
			s.m.User.Run("journalctl", "--user", "--no-pager", "-n", "80"))
	}
	var h half
	if err := json.Unmarshal(out, &h.nameTimes); err != nil {
		s.t.Fatalf("namewait: %v\n%s", err, out)
	}
	for _, a := range s.apps {
		if !a.outlives {
			h.exited = max(h.exited, h.Names[a.name])
		}
	}
	return h
}

// perApp is each app's time back in both halves, for the log.
func (s *session) perApp(w, wo half) string {
	var parts []string
	for _, a := range s.apps {
		parts = append(parts, fmt.Sprintf("%s %s / %s", strings.TrimSuffix(a.unit, ".service"), ms(w.Names[a.name]), ms(wo.Names[a.name])))
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/1e6) }

func mean(ds []time.Duration) float64 {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return float64(sum) / float64(len(ds)) / 1e6
}

func msMedian(ds []time.Duration) float64 {
	fs := make([]float64, len(ds))
	for i, d := range ds {
		fs[i] = float64(d) / 1e6
	}
	return median(fs)
}

func median(fs []float64) float64 {
	s := slices.Sorted(slices.Values(fs))
	n := len(s)
	return (s[(n-1)/2] + s[n/2]) / 2
}
