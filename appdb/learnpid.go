package appdb

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"busmedic/watcher"
)

// busTimeout bounds LearnPID's questions to the buses.
const busTimeout = 10 * time.Second

// LearnPID suggests the rule "busmedic rules add-from-pid" writes for the
// running process pid: Process reads it, the session and the system bus are
// asked which well-known names it owns there (the best sign of the app),
// and Learn makes the rule, which watches the buses the process is on. It
// returns the process as found, with those names, and Learn's warnings,
// and besides a warning when the process is on no bus or a bus could not
// be asked. Its errors are Process's and Learn's.
func LearnPID(ctx context.Context, pid int, id string, action Action) (Rule, watcher.Peer, Errors, error) {
	p, err := Process(pid)
	if err != nil {
		return Rule{}, p, nil, err
	}
	buses, busWarnings := onBuses(ctx, &p)
	r, warnings, err := Learn(p, id, action)
	if err != nil {
		return r, p, warnings, err
	}
	switch {
	case len(buses) == 2:
		r.Bus = BusBoth
	case len(buses) == 1:
		r.Bus = buses[0]
	}
	for _, w := range busWarnings {
		warnings = append(warnings, Error{App: r.ID, Reason: w, Warning: true})
	}
	return r, p, warnings, nil
}

// ExistsError is AddFromPID's refusal to overwrite the rule ID of File,
// at Line, when not told to replace it.
type ExistsError struct {
	File string
	Line int
	ID   string
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("%s:%d already has a rule %q", e.File, e.Line, e.ID)
}

// AddFromPID learns the rule for the running process pid (LearnPID) and
// adds it to the user file of paths, replacing a rule with the same id
// only if replace is set (else an *ExistsError). A keep rule is refused
// for a process on the system bus or in a systemd unit, which the keeper
// cannot hold. It returns the rule as written, with its line, and the
// warnings about it, placed at that line: LearnPID's, and another rule
// that applied to the process already (AlsoMatched). It is "busmedic
// rules add-from-pid".
func AddFromPID(ctx context.Context, paths Paths, pid int, id string, action Action, replace bool) (Rule, Errors, error) {
	r, p, warnings, err := LearnPID(ctx, pid, id, action)
	switch {
	case err != nil:
		return r, nil, err
	case action == ActionKeep && r.Unit != "":
		return r, nil, fmt.Errorf("pid %d runs in the systemd unit %s, which systemd starts: to keep it, put \"busmedic keep --\" in front of the unit's ExecStart", pid, r.Unit)
	case action == ActionKeep && r.Bus != BusSession:
		return r, nil, fmt.Errorf("pid %d is on the %s bus: only the session bus can be kept", pid, r.Bus)
	}
	before, _ := Load(paths) // nil if a file is broken: OpenFile says so
	f, err := OpenFile(paths.User)
	if err != nil {
		return r, nil, fmt.Errorf("%s cannot be edited; fix it first:\n%w", paths.User, err)
	}
	if old, exists := f.Lookup(r.ID); exists && !replace {
		return r, nil, &ExistsError{File: paths.User, Line: old.Line, ID: r.ID}
	}
	if err := f.AddOrReplace(r); err != nil {
		return r, nil, err
	}
	if err := f.Save(); err != nil {
		return r, nil, err
	}
	added, _ := f.Lookup(r.ID)
	if w, ok := AlsoMatched(before, paths, r, p); ok {
		warnings = append(warnings, w)
	}
	// A user rule takes the place of a system rule with its id.
	if sys, ok := before.Lookup(r.ID); ok && filepath.Clean(sys.Source) != filepath.Clean(paths.User) {
		warnings = append(warnings, Error{App: r.ID, Warning: true, Reason: fmt.Sprintf(
			"the system rule %q (%s:%d) has the same id: the new rule takes its place, and that rule no longer applies", r.ID, sys.Source, sys.Line)})
	}
	for i := range warnings {
		warnings[i].File, warnings[i].Line = paths.User, added.Line
	}
	return added, warnings, nil
}

// onBuses finds the process p on the session and the system bus, adds to
// p.Names the well-known names it owns there, and returns the buses it is
// on, and warnings when it is on none or a bus could not be asked.
func onBuses(ctx context.Context, p *watcher.Peer) (buses []Bus, warnings []string) {
	ctx, cancel := context.WithTimeout(ctx, busTimeout)
	defer cancel()
	session, system := watcher.SessionTarget(), watcher.SystemTarget()
	targets := []struct {
		bus Bus
		t   watcher.Target
	}{{BusSession, session}, {BusSystem, system}}
	if system.Address == session.Address {
		targets = targets[:1] // one bus, as in a test or a container
	}
	var unasked []string
	for _, tt := range targets {
		peers, err := watcher.ProcessPeers(ctx, tt.t, p.PID)
		if err != nil {
			unasked = append(unasked, string(tt.bus))
			why := err.Error()
			if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
				why = "nothing listens at " + tt.t.Address
			}
			warnings = append(warnings, fmt.Sprintf("could not ask the %s bus which names pid %d owns there (%s)", tt.bus, p.PID, why))
			continue
		}
		if len(peers) > 0 {
			buses = append(buses, tt.bus)
		}
		for _, peer := range peers {
			p.Names = append(p.Names, peer.Names...)
		}
	}
	slices.Sort(p.Names)
	p.Names = slices.Compact(p.Names)
	if len(buses) == 0 && len(unasked) == 0 {
		prog := "it"
		if p.Exe != "" {
			prog = filepath.Base(p.Exe)
		}
		where := "on neither the session nor the system bus"
		if len(targets) == 1 {
			where = "not on the bus"
		}
		warnings = append(warnings, fmt.Sprintf(
			"pid %d is %s: busmedic acts for the apps that fall off a bus, so this rule applies only once %s is on one", p.PID, where, prog))
	}
	return buses, warnings
}

// AlsoMatched is the warning about the rule r just added to a file of
// paths for the process p (as LearnPID found it) when a rule of before,
// the rules in force before r was added (nil if they did not load), other
// than r already applied to p: which of the two applies to p now.
func AlsoMatched(before *Set, paths Paths, r Rule, p watcher.Peer) (Error, bool) {
	other, ok := before.matchOn(r.Bus, p)
	if !ok || other.ID == r.ID {
		return Error{}, false
	}
	after, _ := Load(paths)
	wins := other
	if now, ok := after.matchOn(r.Bus, p); ok {
		wins = now
	}
	verdict := "the new rule comes first and applies to it"
	if wins.ID != r.ID {
		verdict = fmt.Sprintf("app %q comes first and still applies to it: the new rule does nothing for it (remove one, or set enabled = false)", wins.ID)
	}
	return Error{App: r.ID, Warning: true, Reason: fmt.Sprintf(
		"pid %d is also matched by app %q (%s:%d): %s", p.PID, other.ID, other.Source, other.Line, verdict)}, true
}

// matchOn returns the rule that applies to the process p on bus: MatchBus
// on each bus that bus includes, the session bus first. A nil Set matches
// nothing.
func (s *Set) matchOn(bus Bus, p watcher.Peer) (Rule, bool) {
	for _, b := range []Bus{BusSession, BusSystem} {
		if !bus.Includes(b) {
			continue
		}
		if m, ok := s.MatchBus(b, p); ok {
			return m, true
		}
	}
	return Rule{}, false
}
