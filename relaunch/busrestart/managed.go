package busrestart

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Managed is a session bus daemon that busmedic runs itself, for sessions
// started with dbus-launch and minimal sessions: it starts dbus-daemon at
// the session address, restarts it on request, and starts it again at once
// when it dies.
type Managed struct {
	// Address is the session bus address to listen on, such as
	// unix:path=/run/user/1000/bus.
	Address string
	// Binary is the bus daemon; empty means dbus-daemon from PATH.
	Binary string
	Log    *slog.Logger

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	restart chan chan error
	ready   chan struct{}
	running bool
}

// init makes the channels, so that Restart and Ready may be called before
// Run has started.
func (m *Managed) init() {
	if m.restart == nil {
		m.restart = make(chan chan error)
		m.ready = make(chan struct{})
	}
}

// Ready is closed once the bus daemon first listens.
func (m *Managed) Ready() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	return m.ready
}

func (m *Managed) String() string { return "bus daemon run by busmedic" }

// Running reports whether Run is running the bus daemon.
func (m *Managed) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running
}

// The pauses of Run between two starts of a bus daemon that did not start,
// or died at once (within quickDeath of listening): 200 ms more after each
// such start, up to managedRetryMax, for ever: a session that busmedic
// gives its bus must not be left without one, nor spin.
const (
	managedRetryMax = 30 * time.Second
	quickDeath      = time.Second
)

// Run starts the bus daemon and keeps it running until ctx is done, then
// stops it with SIGTERM. It returns nil when ctx is done.
func (m *Managed) Run(ctx context.Context) error {
	if m.Log == nil {
		m.Log = slog.Default()
	}
	m.mu.Lock()
	m.init()
	m.mu.Unlock()
	failures := 0
	// pending is a Restart caller waiting for the new daemon.
	var pending chan error
	for {
		if failures > 0 {
			t := time.NewTimer(min(time.Duration(failures)*200*time.Millisecond, managedRetryMax))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		exited, err := m.start()
		if err != nil {
			failures++
			if pending != nil && failures >= 5 {
				// The caller is told; the tries go on.
				pending <- fmt.Errorf("bus daemon does not start: %w", err)
				pending = nil
			}
			if failures == 1 || failures%10 == 0 {
				m.Log.Error("bus daemon did not start; trying again", "err", err, "tries", failures)
			}
			continue
		}
		listened := time.Now()
		if pending != nil {
			pending <- nil
			pending = nil
		}
		select {
		case <-ctx.Done():
			m.stop(exited)
			return nil
		case <-exited:
			if time.Since(listened) < quickDeath {
				failures++
				m.Log.Warn("bus daemon died as soon as it started; starting it again after a pause", "tries", failures)
			} else {
				failures = 0
				m.Log.Warn("bus daemon died; starting it again")
			}
		case reply := <-m.restart:
			m.Log.Info("restarting the session bus on request")
			m.stop(exited)
			failures = 0
			pending = reply
		}
	}
}

// Restart stops the bus daemon and starts it again.
func (m *Managed) Restart(ctx context.Context) error {
	m.mu.Lock()
	m.init()
	ch := m.restart
	m.mu.Unlock()
	reply := make(chan error, 1)
	select {
	case ch <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// start runs the daemon and returns once it listens.
func (m *Managed) start() (<-chan struct{}, error) {
	bin := m.Binary
	if bin == "" {
		bin = "dbus-daemon"
	}
	cmd := exec.Command(bin, "--session", "--nofork", "--nopidfile", "--address="+m.Address, "--print-address=1")
	// The bus must outlive neither busmedic's crash nor its clean exit
	// unnoticed: on exit Run stops it; Pdeathsig covers a crash.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	printed := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			close(printed)
		}
		for sc.Scan() {
		}
		cmd.Wait()
		m.mu.Lock()
		m.running = false
		m.mu.Unlock()
		close(exited)
	}()
	select {
	case <-printed:
	case <-exited:
		return nil, fmt.Errorf("%s exited at start: %s", bin, strings.TrimSpace(stderr.String()))
	}
	m.mu.Lock()
	m.cmd, m.exited, m.running = cmd, exited, true
	select {
	case <-m.ready:
	default:
		close(m.ready)
	}
	m.mu.Unlock()
	m.Log.Info("session bus daemon started", "pid", cmd.Process.Pid, "address", m.Address)
	return exited, nil
}

func (m *Managed) stop(exited <-chan struct{}) {
	m.mu.Lock()
	cmd := m.cmd
	m.mu.Unlock()
	cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		cmd.Process.Kill()
		<-exited
	}
}
