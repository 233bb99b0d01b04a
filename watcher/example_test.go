package watcher_test

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"busmedic/watcher"
)

// Follow the session bus and say who fell off each time it goes down.
func ExampleWatcher_Run() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT)
	defer stop()
	w, err := watcher.New(watcher.SessionTarget())
	if err != nil {
		fmt.Println(err)
		return
	}
	events := make(chan watcher.Event)
	go w.Run(ctx, events)
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-events:
			if e.Kind == watcher.Down {
				for _, p := range e.Peers {
					fmt.Println("fell off:", p)
				}
			}
		}
	}
}

// Print the events of the session and the system bus, in the order they
// come, until interrupted.
func ExampleRunAll() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT)
	defer stop()
	var ws []*watcher.Watcher
	for _, t := range []watcher.Target{watcher.SessionTarget(), watcher.SystemTarget()} {
		w, err := watcher.New(t)
		if err != nil {
			fmt.Println(err)
			return
		}
		ws = append(ws, w)
	}
	events := make(chan watcher.Event)
	go watcher.RunAll(ctx, ws, events)
	for e := range events { // closed once ctx has ended every watcher
		fmt.Println(e)
	}
}

// Wait until the session bus is up, as a program that needs nothing else
// from it does.
func ExampleUpDownOnly() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := watcher.New(watcher.SessionTarget(), watcher.UpDownOnly())
	if err != nil {
		fmt.Println(err)
		return
	}
	events := make(chan watcher.Event)
	go w.Run(ctx, events)
	for e := range events {
		if e.Kind == watcher.Up {
			fmt.Println("session bus up:", e.ID)
			return // cancel stops the watcher
		}
	}
}

func ExampleParseTarget() {
	t, err := watcher.ParseTarget("tcp:host=192.0.2.7,port=4000")
	fmt.Println(t.Name, err)
	_, err = watcher.ParseTarget("unix:socket=/run/bus")
	fmt.Println(err)
	// Output:
	// tcp:host=192.0.2.7,port=4000 <nil>
	// bad bus address "unix:socket=/run/bus": unix transport needs path= or abstract=
}

func ExampleWithoutGUID() {
	// The address dbus-launch exported, given to an app busmedic starts
	// after the bus was restarted with a new guid.
	fmt.Println(watcher.WithoutGUID("unix:path=/tmp/dbus-x1,guid=0f1e2d;tcp:host=localhost,port=4000,guid=0f1e2d"))
	// Output: unix:path=/tmp/dbus-x1;tcp:host=localhost,port=4000
}
