package control_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"busmedic/relaunch/control"
)

func ExampleStatus_WriteText() {
	at := time.Date(2025, 3, 4, 12, 3, 0, 0, time.Local)
	st := control.Status{
		Buses: []control.BusStatus{
			{Name: "session", Up: true, Since: at, Peers: 12},
			{Name: "system", Up: true, Since: at, Peers: 40},
		},
		Apps: []control.AppStatus{{ID: "dunst", Action: "relaunch", Enabled: true, Running: true,
			Last: &control.Job{Outcome: control.Relaunched, Started: at.Add(time.Second), Took: 340 * time.Millisecond}}},
	}
	if err := st.WriteText(os.Stdout); err != nil {
		fmt.Println(err)
	}
	// Output:
	// session bus: up since 12:03:00 (12 peers)
	// system bus: up since 12:03:00 (40 peers)
	//
	// Apps:
	//   dunst  relaunch  running  last: relaunched at 12:03:01 (340ms)
}

func ExampleRecovery_WriteText() {
	at := time.Date(2025, 3, 4, 12, 3, 0, 0, time.Local)
	r := control.Recovery{Bus: "session", Started: at, Downtime: 1200 * time.Millisecond, Jobs: []control.Job{
		{App: "dunst", Outcome: control.Relaunched, Took: 340 * time.Millisecond, Reason: "ended a stale process first"},
		{App: "panel", Outcome: control.Failed, Reason: "no such process"},
	}}
	if err := r.WriteText(os.Stdout); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 2025-03-04 12:03:00 session bus restarted (down 1.2s)
	//   dunst  relaunched  340ms  ended a stale process first
	//   panel  failed      0s     no such process
}

func ExampleJob_Text() {
	j := control.Job{App: "dunst", Outcome: control.Relaunched,
		Started: time.Date(2025, 3, 4, 12, 3, 1, 0, time.Local), Took: 340 * time.Millisecond}
	fmt.Printf("%s: %s\n", j.App, j.Text())
	// Output:
	// dunst: relaunched at 12:03:01 (340ms)
}

func ExampleOutcome_Recovered() {
	for _, o := range []control.Outcome{control.Reconnected, control.Notified, control.Skipped, control.Running} {
		fmt.Println(o, o.Recovered())
	}
	// Output:
	// reconnected true
	// notified true
	// skipped false
	// running false
}

// What "busmedic status --follow --json" does: one line of JSON for the
// status and for each change, through the daemon's restarts, until Ctrl-C.
func ExampleClient_WriteFollow() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c := control.NewClient(control.DefaultPath())
	err := c.WriteFollow(ctx, os.Stdout, true, func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, "waiting for busmedic:", err)
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
