package controltest_test

import (
	"context"
	"fmt"
	"testing"

	"busmedic/relaunch/control"
	"busmedic/relaunch/control/controltest"
)

// A stand-in daemon that answers status requests, for a client under test.
func ExampleServe() {
	t := &testing.T{} // the test's own t
	daemon := controltest.NewDaemon(control.Status{Buses: []control.BusStatus{{Name: "session", Up: true}}})
	socket := controltest.Serve(t, daemon)
	c, err := control.Dial(context.Background(), socket)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	st, err := c.Status(context.Background())
	fmt.Println(st.Buses[0].Name, st.Buses[0].Up, err)
}
