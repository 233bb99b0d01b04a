package tray

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/relaunch/control/controltest"
)

// A click whose request runs out of time says so in a notification, as
// any other failure does: it used to be taken for the tray shutting down,
// and only logged.
func TestClickOutOfTime(t *testing.T) {
	d := controltest.NewDaemon(control.Status{})
	c := control.NewClient(controltest.Serve(t, d))
	defer c.Close()
	tr := &tray{daemon: c, log: slog.New(slog.DiscardHandler)}
	tr.doWithin(context.Background(), 50*time.Millisecond, "Relaunch of dunst", func(ctx context.Context, _ *control.Client) error {
		<-ctx.Done() // a relaunch that takes longer
		return ctx.Err()
	})
	select {
	case n := <-d.Notices():
		if n.Title != "busmedic: Relaunch of dunst failed" || !strings.Contains(n.Body, "did not answer within 50ms") {
			t.Errorf("notice %+v, want the relaunch's failure: no answer in time", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification of a click that ran out of time")
	}
}
