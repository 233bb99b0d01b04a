// Command testapp is a stand-in for the desktop programs busmedic recovers.
// It connects to the session bus (DBUS_SESSION_BUS_ADDRESS), owns the names
// it is given, and behaves on bus loss as its -mode says:
//
//	exit       exit(1), as libdbus programs do
//	deaf       stay alive, disconnected, as some Qt programs do
//	reconnect  reconnect by itself and take its names again
//
// With -after NAME it exits with status 3 at start unless NAME is on the bus,
// like a program that needs a service. It prints "ready" once it owns its names.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

type names []string

func (n *names) String() string     { return strings.Join(*n, ",") }
func (n *names) Set(s string) error { *n = append(*n, s); return nil }

func main() {
	var own names
	flag.Var(&own, "name", "well-known name to own (repeatable)")
	mode := flag.String("mode", "exit", "exit, deaf or reconnect")
	after := flag.String("after", "", "name that must be on the bus at start")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *ignoreTerm {
		stop()
		signal.Ignore(syscall.SIGTERM)
		ctx = context.Background()
	}
	conn, err := connect(own)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(2)
	}
	if *after != "" {
		var has bool
		if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, *after).Store(&has); err != nil || !has {
			fmt.Fprintf(os.Stderr, "testapp: %s is not on the bus\n", *after)
			os.Exit(3)
		}
	}
	fmt.Println("ready")
	for {
		select {
		case <-ctx.Done():
			os.Exit(0)
		case <-conn.Context().Done():
		}
		switch *mode {
		case "exit":
			fmt.Fprintln(os.Stderr, "testapp: disconnected from bus, exiting")
			os.Exit(1)
		case "deaf":
			<-ctx.Done()
			select {} // with -ignore-term only SIGKILL ends it
		case "reconnect":
			for {
				if conn, err = connect(own); err == nil {
					fmt.Println("ready")
					break
				}
				select {
				case <-ctx.Done():
					os.Exit(0)
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}
}

func connect(own []string) (*dbus.Conn, error) {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return nil, err
	}
	for _, n := range own {
		reply, err := conn.RequestName(n, dbus.NameFlagDoNotQueue)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("request %s: %w", n, err)
		}
		if reply != dbus.RequestNameReplyPrimaryOwner {
			conn.Close()
			return nil, fmt.Errorf("request %s: name taken", n)
		}
	}
	return conn, nil
}
