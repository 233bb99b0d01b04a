package relaunch

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"busmedic/appdb"
)

// orderedFor is how long after busmedic orders a bus restart a lost bus
// counts as that restart.
const orderedFor = time.Minute

// Intent judges whether a lost bus was meant to go: at logout and shutdown
// relaunching apps makes windows pop up in a session that is ending, blocks
// the shutdown and looks broken, so recovery must not start then. Its Ending
// method is the engine's Config.Intent.
type Intent struct {
	// Logind tells whether our login session is closing or the machine
	// shutting down; nil without logind.
	Logind interface{ Ending() (bool, string) }
	// Display tells whether the graphical session is gone; nil to skip.
	Display func() (bool, string)
	// Settings gives recover_on_logout; nil means the defaults.
	Settings func() appdb.Settings
	Log      *slog.Logger

	mu       sync.Mutex
	ordered  map[string]time.Time
	stopping string
	ended    chan struct{}
}

// Ordered records that busmedic itself is restarting bus (from the tray,
// the command line or the update policy): recovery is then expected.
// withdraw takes the order back when the restart failed (polkit refused,
// systemd could not): a loss of the bus soon after is then judged like any
// other, and a logout in that minute does not bring apps back.
func (i *Intent) Ordered(bus string) (withdraw func()) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.ordered == nil {
		i.ordered = map[string]time.Time{}
	}
	at := time.Now()
	i.ordered[bus] = at
	return func() {
		i.mu.Lock()
		defer i.mu.Unlock()
		if i.ordered[bus].Equal(at) { // not a later order
			delete(i.ordered, bus)
		}
	}
}

// Stopping records that busmedic is ending (SIGTERM, SIGHUP: the session
// is tearing down its children); no recovery starts after it.
func (i *Intent) Stopping(why string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.stopping = why
}

// Ended is closed the first time Ending finds the session ending.
func (i *Intent) Ended() <-chan struct{} {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.ended == nil {
		i.ended = make(chan struct{})
	}
	return i.ended
}

// Ending reports whether the session is ending, so that a lost bus is not
// to be recovered, and which signal says so.
func (i *Intent) Ending(bus string) (ending bool, why string) {
	ending, why = i.decide(bus)
	log := i.Log
	if log == nil {
		log = slog.Default()
	}
	if ending {
		log.Info("session ending: no recovery", "bus", bus, "signal", why)
		i.mu.Lock()
		if i.ended == nil {
			i.ended = make(chan struct{})
		}
		select {
		case <-i.ended:
		default:
			close(i.ended)
		}
		i.mu.Unlock()
	} else if why != "" {
		log.Info("recovery goes ahead", "bus", bus, "signal", why)
	}
	return ending, why
}

func (i *Intent) decide(bus string) (bool, string) {
	i.mu.Lock()
	stopping, orderedAt := i.stopping, i.ordered[bus]
	i.mu.Unlock()
	if stopping != "" {
		return true, stopping
	}
	if !orderedAt.IsZero() && time.Since(orderedAt) < orderedFor {
		return false, fmt.Sprintf("the restart was ordered by busmedic at %s", orderedAt.Format(time.TimeOnly))
	}
	if i.Settings != nil && i.Settings().RecoverOnLogout {
		return false, "recover_on_logout = true"
	}
	if i.Logind != nil {
		if ending, why := i.Logind.Ending(); ending {
			return true, why
		}
	}
	if i.Display != nil {
		if gone, why := i.Display(); gone {
			return true, why
		}
	}
	return false, ""
}
