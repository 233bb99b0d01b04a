package control_test

import (
	"testing"
	"time"

	"busmedic/relaunch/control"
)

func TestReplayText(t *testing.T) {
	base := control.Replay{PID: 1234, Command: "dunst", Bus: "session", BusID: "b1", Took: 4 * time.Millisecond}
	with := func(f func(r *control.Replay)) control.Replay {
		r := base
		f(&r)
		return r
	}
	tests := []struct {
		name string
		r    control.Replay
		want string
	}{
		{"matches and a name", with(func(r *control.Replay) { r.Matches, r.Names = 3, []string{"org.x.A"} }),
			"kept dunst (pid 1234): 3 matches, 1 name replayed in 4 ms"},
		{"one match", with(func(r *control.Replay) { r.Matches = 1 }), "kept dunst (pid 1234): 1 match replayed in 4 ms"},
		{"nothing", base, "kept dunst (pid 1234): nothing to replay, reconnected in 4 ms"},
		{"lost", with(func(r *control.Replay) { r.Matches, r.Names, r.Lost = 2, []string{"org.x.A"}, []string{"org.x.B"} }),
			"kept dunst (pid 1234), but lost org.x.B: 2 matches, 2 names replayed in 4 ms"},
		{"monitor", with(func(r *control.Replay) { r.Monitor = true }), "kept dunst (pid 1234): the monitor replayed in 4 ms"},
		{"error", with(func(r *control.Replay) { r.Error = "Hello: no reply" }), "could not keep dunst (pid 1234): Hello: no reply"},
		{"fast", with(func(r *control.Replay) { r.Took = 300 * time.Microsecond }), "kept dunst (pid 1234): nothing to replay, reconnected in under 1 ms"},
		{"slow", with(func(r *control.Replay) { r.Took = 1234 * time.Millisecond }), "kept dunst (pid 1234): nothing to replay, reconnected in 1.2 s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Text(); got != tt.want {
				t.Errorf("Text() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKeptAppText(t *testing.T) {
	since := time.Date(2025, 3, 4, 12, 3, 1, 0, time.Local)
	tests := []struct {
		name        string
		a           control.KeptApp
		text, brief string
	}{
		{"restarts", control.KeptApp{PID: 1234, Command: "dunst", Restarts: 3},
			"dunst (pid 1234), through 3 restarts", "dunst — kept through 3 restarts"},
		{"one restart", control.KeptApp{PID: 1234, Command: "dunst", Restarts: 1},
			"dunst (pid 1234), through 1 restart", "dunst — kept through 1 restart"},
		{"none yet", control.KeptApp{PID: 1234, Command: "dunst", Since: since},
			"dunst (pid 1234), since 12:03:01", "dunst — kept"},
		{"lost", control.KeptApp{PID: 1234, Command: "dunst", Restarts: 2, Lost: []string{"org.x.Y"}},
			"dunst (pid 1234), through 2 restarts; lost org.x.Y to another process at the last restart", "dunst — kept, lost org.x.Y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Text(); got != tt.text {
				t.Errorf("Text() = %q, want %q", got, tt.text)
			}
			if got := tt.a.Brief(); got != tt.brief {
				t.Errorf("Brief() = %q, want %q", got, tt.brief)
			}
		})
	}
}

// Each replay is news once, whichever status brings it again.
func TestNewReplays(t *testing.T) {
	at := time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC)
	r1 := &control.Replay{PID: 1, BusID: "b1", Time: at}
	r2 := &control.Replay{PID: 2, BusID: "b1", Time: at}
	r1again := &control.Replay{PID: 1, BusID: "b2", Time: at.Add(time.Second)}
	seen := map[string]bool{}
	steps := []struct {
		apps []control.KeptApp
		want []int // pids
	}{
		{[]control.KeptApp{{PID: 1, LastReplay: r1}, {PID: 2}}, []int{1}},
		{[]control.KeptApp{{PID: 1, LastReplay: r1}, {PID: 2, LastReplay: r2}}, []int{2}},
		{[]control.KeptApp{{PID: 1, LastReplay: r1}, {PID: 2, LastReplay: r2}}, nil},
		{[]control.KeptApp{{PID: 1, LastReplay: r1again}, {PID: 2, LastReplay: r2}}, []int{1}},
	}
	for i, s := range steps {
		var got []int
		for _, r := range control.NewReplays(s.apps, seen) {
			got = append(got, r.PID)
		}
		if len(got) != len(s.want) || len(got) > 0 && got[0] != s.want[0] {
			t.Errorf("step %d: new replays of pids %v, want %v", i, got, s.want)
		}
	}
}
