package control

import (
	"errors"
	"fmt"
)

// The errors a request can end in besides the daemon not running. The
// daemon sends each with a code (Response.Code) beside its message, and
// the Client returns an error that errors.Is matches with the one the
// daemon had, so that no client reads meaning out of words.
var (
	// ErrUnknownApp: the id is neither a rule nor a casualty. Code
	// "unknown-app".
	ErrUnknownApp = errors.New("no such app or casualty")
	// ErrAppRunning: a relaunch without Force of an app that is running
	// on its bus, which the relaunch would stop and start again. The
	// message says who runs where. Code "app-running".
	ErrAppRunning = errors.New("the app is running")
	// ErrCannotRestart: busmedic has no way to restart that bus. Such an
	// error is a *RestartRefusal, which says why. Code "cannot-restart".
	ErrCannotRestart = errors.New("cannot restart the bus")
	// ErrBadRequest: the request itself is wrong: not JSON, longer than
	// DefaultMaxLine, an unknown operation, no id, or no such bus. Code
	// "bad-request".
	ErrBadRequest = errors.New("bad request")
	// ErrTooManyClients: the daemon serves DefaultMaxClients connections
	// at once and refused one more; try again later. Code
	// "too-many-clients".
	ErrTooManyClients = errors.New("too many control clients")
)

// errIdle is a connection the server closed after DefaultIdleTimeout
// without a request. The Client meets it only on a connection it kept
// between requests, and then connects again: the request was not read.
// Code "idle".
var errIdle = errors.New("closed for want of requests")

// codes name the errors on the wire. A code is the stable part of an
// error; the message may change.
var codes = []struct {
	code string
	err  error
}{
	{"unknown-app", ErrUnknownApp},
	{"app-running", ErrAppRunning},
	{"cannot-restart", ErrCannotRestart},
	{"bad-request", ErrBadRequest},
	{"too-many-clients", ErrTooManyClients},
	{"idle", errIdle},
}

func codeOf(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

func errorOf(code string) error {
	for _, c := range codes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

// RestartRefusal is why busmedic cannot restart a bus, with the facts
// that a client shows instead of parsing Reason: who started the bus
// daemon. It is the error of a refused restart (it wraps
// ErrCannotRestart), and Status carries it for the session bus before
// anyone asks.
type RestartRefusal struct {
	// Bus is "session" or "system".
	Bus string `json:"bus"`
	// Reason is the whole refusal for people, with what to do instead:
	// "the session bus (pid 1234) was started by dbus-run-session, pid
	// 1233; to let busmedic restart it, run ...".
	Reason string `json:"reason"`
	// PID is the bus daemon's; 0 when the bus did not tell it.
	PID int `json:"pid,omitempty"`
	// StartedBy is the program that started the bus daemon (its parent,
	// "dbus-run-session"), StartedByPID that program's pid; both empty
	// when it is not known.
	StartedBy    string `json:"started_by,omitempty"`
	StartedByPID int    `json:"started_by_pid,omitempty"`
	// StarterExited: the program that started the bus daemon has exited
	// and the daemon was adopted, as dbus-launch leaves it.
	StarterExited bool `json:"starter_exited,omitempty"`
	// Unit is the systemd unit or scope the bus daemon runs in, when that
	// is not a bus unit busmedic can restart ("session-2.scope").
	Unit string `json:"unit,omitempty"`
}

func (r *RestartRefusal) Error() string { return ErrCannotRestart.Error() + ": " + r.Reason }

// Unwrap makes a refusal match ErrCannotRestart.
func (r *RestartRefusal) Unwrap() error { return ErrCannotRestart }

// requestError is a failed request as the daemon told it: its message
// for people, and what errors.Is and errors.As find in it.
type requestError struct {
	msg  string
	kind error           // one of the Err values above, or nil
	why  *RestartRefusal // with ErrCannotRestart
}

// coded returns an error that matches kind, with the message as given
// (not prefixed with kind's).
func coded(kind error, format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...), kind: kind}
}

func (e *requestError) Error() string { return e.msg }

func (e *requestError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.why != nil {
		errs = append(errs, e.why)
	}
	return errs
}

// failure is the answer to a request that ended in err.
func failure(err error) Response {
	resp := Response{Error: err.Error(), Code: codeOf(err)}
	var why *RestartRefusal
	if errors.As(err, &why) {
		resp.Refusal = why
	}
	return resp
}

// err returns the error a failed answer stands for.
func (resp Response) err() error {
	return &requestError{msg: resp.Error, kind: errorOf(resp.Code), why: resp.Refusal}
}
