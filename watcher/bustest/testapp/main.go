// Command testapp is a stand-in for the desktop programs busmedic recovers.
// It connects to the session bus (DBUS_SESSION_BUS_ADDRESS), owns the names
// it is given, and behaves on bus loss as its -mode says:
//
//	exit       exit(1), as libdbus programs do
//	deaf       stay alive, disconnected, as some Qt programs do
//	reconnect  reconnect by itself and take its names again
//	signal     stay alive, disconnected, until SIGUSR1, then reconnect and
//	           take its names again, like a program whose reload signal
//	           makes it reconnect (SIGUSR1 while connected does nothing)
//
// With -notifications it serves org.freedesktop.Notifications and keeps every
// notification open until it is closed by its sender, as a notification
// server does for a persistent one (it also owns that name).
//
// With -spawn NAME it starts a second testapp, its child, that owns NAME and
// exits with its bus, like a panel's plugin process.
//
// With -after NAME it exits with status 3 at start unless NAME is on the bus,
// like a program that needs a service. With -chatter N it writes N bytes of
// log lines to stderr at start, like a chatty program. It prints "ready"
// once it owns its names.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
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
	mode := flag.String("mode", "exit", "exit, deaf, reconnect or signal")
	after := flag.String("after", "", "name that must be on the bus at start")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	chatter := flag.Int("chatter", 0, "bytes of log lines to write to stderr at start")
	spawn := flag.String("spawn", "", "name a child testapp owns")
	notifications := flag.Bool("notifications", false, "serve org.freedesktop.Notifications, keeping notifications open")
	flag.Parse()
	if *notifications {
		own = append(own, notifyName)
	}
	if *chatter > 0 {
		// One write: a log cut between two lines of it is not the test's.
		line := "testapp: something worth a warning happened, again\n"
		os.Stderr.WriteString(strings.Repeat(line, (*chatter+len(line)-1)/len(line)))
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *ignoreTerm {
		stop()
		signal.Ignore(syscall.SIGTERM)
		ctx = context.Background()
	}
	// In signal mode SIGUSR1 is caught from the start, so that it never
	// ends the program (its default action); other modes keep the default.
	usr1 := make(chan os.Signal, 1)
	if *mode == "signal" {
		signal.Notify(usr1, syscall.SIGUSR1)
	}
	conn, err := connect(own, *notifications)
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
	if *spawn != "" {
		// Its own session would make it no helper of ours; it stays in
		// our process group, but reaps itself: we do not wait for it.
		child := exec.Command(os.Args[0], "-name", *spawn, "-mode", "exit")
		child.Stderr = os.Stderr
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "testapp: spawn:", err)
			os.Exit(2)
		}
		go child.Wait()
	}
	fmt.Println("ready")
	for {
		reload := false
		select {
		case <-ctx.Done():
			os.Exit(0)
		case <-conn.Context().Done():
		case <-usr1:
			// A reload while connected has nothing to redo, unless the
			// bus is gone and the reader has not noticed yet.
			if conn.BusObject().Call("org.freedesktop.DBus.Peer.Ping", 0).Err == nil {
				continue
			}
			conn.Close()
			reload = true
		}
		switch *mode {
		case "exit":
			fmt.Fprintln(os.Stderr, "testapp: disconnected from bus, exiting")
			os.Exit(1)
		case "deaf":
			// SIGTERM ends it, as it ends a deaf Qt program; with
			// -ignore-term ctx never ends, and only SIGKILL does.
			<-ctx.Done()
			os.Exit(0)
		case "reconnect":
			for {
				if conn, err = connect(own, *notifications); err == nil {
					fmt.Println("ready")
					break
				}
				select {
				case <-ctx.Done():
					os.Exit(0)
				case <-time.After(20 * time.Millisecond):
				}
			}
		case "signal":
			fmt.Fprintln(os.Stderr, "testapp: disconnected from bus, waiting for SIGUSR1")
			for {
				if !reload {
					select {
					case <-ctx.Done():
						os.Exit(0)
					case <-usr1:
					}
				}
				reload = false
				if conn, err = connect(own, *notifications); err == nil {
					fmt.Println("ready")
					break
				}
				fmt.Fprintln(os.Stderr, "testapp: reconnect after SIGUSR1:", err)
			}
		}
	}
}

func connect(own []string, notifications bool) (*dbus.Conn, error) {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return nil, err
	}
	if notifications {
		// Exported before the name is taken: a client that sees the name
		// can call at once.
		if err := conn.Export(&notifyServer{}, notifyPath, notifyName); err != nil {
			conn.Close()
			return nil, fmt.Errorf("export notifications: %w", err)
		}
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

const (
	notifyName = "org.freedesktop.Notifications"
	notifyPath = dbus.ObjectPath("/org/freedesktop/Notifications")
)

// notifyServer is a notification server that shows nothing and closes a
// notification only when asked to.
type notifyServer struct {
	mu   sync.Mutex
	last uint32
}

func (n *notifyServer) Notify(app string, replaces uint32, icon, summary, body string, actions []string,
	hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.last++
	fmt.Fprintf(os.Stderr, "testapp: notification %d: %s: %s\n", n.last, summary, body)
	return n.last, nil
}

func (n *notifyServer) CloseNotification(id uint32) *dbus.Error { return nil }

func (n *notifyServer) GetCapabilities() ([]string, *dbus.Error) {
	return []string{"actions", "body", "persistence"}, nil
}

func (n *notifyServer) GetServerInformation() (string, string, string, string, *dbus.Error) {
	return "testapp", "busmedic", "1", "1.2", nil
}
