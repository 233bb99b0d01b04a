package relaunch_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"

	"busmedic/appdb"
	"busmedic/relaunch"
	"busmedic/watcher"
)

// The daemon feeds the watcher's events of both buses into one engine and
// serves its Status; the engine relaunches what fell off each restart.
func ExampleNew() {
	store := appdb.NewStore(appdb.DefaultPaths(""), slog.Default())
	session, system := watcher.SessionTarget(), watcher.SystemTarget()
	eng := relaunch.New(relaunch.Config{
		Rules: store.Current,
		Addresses: func(bus string) string {
			if bus == "system" {
				return system.Address
			}
			return session.Address
		},
		StateDir: os.ExpandEnv("$HOME/.local/state/busmedic"),
		Notifier: &relaunch.DesktopNotifier{Address: func() string { return session.Address }},
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan watcher.Event, 256)
	for _, t := range []watcher.Target{session, system} {
		w, err := watcher.New(t)
		if err != nil {
			log.Fatal(err)
		}
		go w.Run(ctx, events)
	}
	go func() {
		for range eng.Changed() {
			st := eng.Status()
			fmt.Println(len(st.Apps), "apps,", len(st.Casualties), "casualties")
		}
	}()
	if err := eng.Run(ctx, events); err != nil {
		log.Print(err)
	}
}
