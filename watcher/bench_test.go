package watcher_test

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

// BenchmarkRestart kills and restarts a real dbus-daemon b.N times and
// reports how fast the watcher notices, beside the floor measured on the same
// daemon in the same iteration:
//
//   - down: SIGKILL -> Down event; floor: SIGKILL -> EOF on a raw connection.
//   - up: daemon exec -> Up event; floor: daemon exec -> first accepted
//     connect of a tight raw connect loop on the same socket.
//
// Run it with: go test -run '^$' -bench Restart -benchtime 200x ./watcher
func BenchmarkRestart(b *testing.B) {
	bus := bustest.New(b)
	w, err := watcher.New(watcher.Target{Name: "bench", Address: bus.Address()},
		watcher.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan watcher.Event, 1024)
	go w.Run(ctx, events)
	waitKind := func(k watcher.Kind) time.Time {
		b.Helper()
		timer := time.NewTimer(deadline)
		defer timer.Stop()
		for {
			select {
			case e := <-events:
				if e.Kind == k {
					// The watcher's own timestamp: bus.Start blocks
					// for a while after the bus is already up.
					return e.Time
				}
			case <-timer.C:
				b.Fatalf("no %v within %s", k, deadline)
			}
		}
	}
	waitKind(watcher.Up)
	socket := bus.SocketPath()

	var down, downFloor, up, upFloor, upAnswer []time.Duration
	b.ResetTimer()
	for range b.N {
		// Down: a raw connection's EOF is the earliest anyone can know.
		raw, err := net.Dial("unix", socket)
		if err != nil {
			b.Fatal(err)
		}
		eof := make(chan time.Time, 1)
		go func() {
			io.Copy(io.Discard, raw)
			eof <- time.Now()
		}()
		killAt := time.Now()
		bus.Signal(9)
		downAt := waitKind(watcher.Down)
		down = append(down, downAt.Sub(killAt))
		downFloor = append(downFloor, (<-eof).Sub(killAt))
		raw.Close()
		<-bus.Exited()
		bus.Kill() // reaps the bookkeeping; the process is gone already

		// Up: a tight connect loop is the earliest anyone can know that
		// the socket accepts; the same loop then speaks the first line of
		// the D-Bus handshake, to tell when the daemon itself answers.
		stopLoop := make(chan struct{})
		accepted := make(chan time.Time, 1)
		answered := make(chan time.Time, 1)
		go func() {
			for {
				select {
				case <-stopLoop:
					// Never connected (the loop was not scheduled in
					// time): no sample, but no hang either.
					accepted <- time.Time{}
					answered <- time.Time{}
					return
				default:
				}
				if c, err := net.Dial("unix", socket); err == nil {
					accepted <- time.Now()
					answered <- handshake(c)
					c.Close()
					return
				}
			}
		}()
		startAt := time.Now()
		bus.Start()
		upAt := waitKind(watcher.Up)
		waitKind(watcher.Restarted)
		close(stopLoop)
		acceptAt, answerAt := <-accepted, <-answered
		if acceptAt.IsZero() {
			continue
		}
		up = append(up, upAt.Sub(startAt))
		upFloor = append(upFloor, acceptAt.Sub(startAt))
		upAnswer = append(upAnswer, answerAt.Sub(startAt))
	}
	b.StopTimer()
	report(b, "down", down, downFloor)
	report(b, "up", up, upFloor)
	// How far Up lags the socket accepting, and the daemon answering, per
	// iteration.
	lag := make([]time.Duration, len(up))
	answerLag := make([]time.Duration, len(up))
	for i := range up {
		lag[i] = up[i] - upFloor[i]
		answerLag[i] = up[i] - upAnswer[i]
	}
	b.ReportMetric(ms(percentile(upAnswer, 50)), "up-answer-p50-ms")
	b.ReportMetric(ms(percentile(lag, 50)), "up-lag-accept-p50-ms")
	b.ReportMetric(ms(percentile(lag, 99)), "up-lag-accept-p99-ms")
	b.ReportMetric(ms(percentile(answerLag, 50)), "up-lag-answer-p50-ms")
	b.ReportMetric(ms(percentile(answerLag, 99)), "up-lag-answer-p99-ms")
}

// handshake sends the first line of the D-Bus authentication and returns
// when the daemon answers it.
func handshake(c net.Conn) time.Time {
	uid := hex.EncodeToString([]byte(strconv.Itoa(os.Getuid())))
	if _, err := io.WriteString(c, "\x00AUTH EXTERNAL "+uid+"\r\n"); err != nil {
		return time.Now()
	}
	buf := make([]byte, 128)
	c.Read(buf)
	return time.Now()
}

func report(b *testing.B, name string, got, floor []time.Duration) {
	for _, p := range []float64{50, 99} {
		g, f := percentile(got, p), percentile(floor, p)
		suffix := "-p" + itoa(int(p))
		b.ReportMetric(ms(g), name+suffix+"-ms")
		b.ReportMetric(ms(f), name+"-floor"+suffix+"-ms")
		if f > 0 {
			b.ReportMetric(float64(g)/float64(f), name+suffix+"/floor")
		}
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
