// Package control is the daemon's local API: a Unix socket under
// $XDG_RUNTIME_DIR/busmedic that serves status, history and commands to the
// tray, the rules editor and the command line. It works while both buses
// are down, which is when it matters most, so it speaks JSON lines over its
// own socket rather than D-Bus.
//
// # The contract
//
// This package is the whole contract between the daemon and its clients:
// the requests and answers (Request, Response), the types they carry
// (Status, Recovery, Job, PlannedJob and what they hold; TrayHost and
// Notice, which the tray child sends), and the errors a request can end
// in. The recovery engine (package relaunch) fills these
// types in and imports this package; this package never imports the
// engine, so a client depends on the contract and not on the engine. The
// types live here rather than in a package of their own: such a package
// would spare the engine nothing, since the daemon links the server
// anyway, and every client would import two packages for one contract.
//
// The JSON names of Status and Recovery, and of everything in them, are
// stable: they are also the output of "busmedic status --json" and
// "busmedic history --json", which scripts read. Golden files in testdata
// pin them; a field may be added, none renamed or removed. Status and
// Recovery also write themselves as text for people (WriteText): the
// output of "busmedic status" and "busmedic history", pinned by golden
// files as well.
//
// # Errors
//
// A request that fails is answered with "ok": false, its message in
// "error" and, for the failures a client may act on, a code in "code":
// "unknown-app" (ErrUnknownApp), "app-running" (ErrAppRunning: a relaunch
// without "force" of an app that runs), "cannot-restart" (ErrCannotRestart, with
// a RestartRefusal in "refusal"), "bad-request" (ErrBadRequest),
// "too-many-clients" (ErrTooManyClients) and "idle" (the connection was
// closed unused; the request was not read). The Client turns an answer
// back into an error that errors.Is matches with these, and errors.As
// finds the RestartRefusal in.
//
// # The socket
//
// The socket is 0600 in a 0700 directory and every connection's peer uid is
// checked, since the API can start programs. A lock file next to it keeps
// one daemon per user.
//
// No client can starve the server: it serves at most DefaultMaxClients
// connections at once and answers one more with an error Response ("too
// many control clients") and closes it, rather than keeping it waiting on
// a descriptor; it closes a connection that sends no request for
// DefaultIdleTimeout (a watch stream, which the server writes to, is not
// idle), one that does not take a reply within DefaultWriteTimeout, and
// one whose request line is longer than DefaultMaxLine, after an error
// Response. When accept fails for want of descriptors or memory, the
// server backs off (5 ms doubling to 1 s) and tries again; any other
// accept error ends Serve with the socket removed and the lock released,
// so that the daemon exits instead of lingering out of reach.
package control

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"

	"github.com/adrg/xdg"

	"busmedic/watcher"
)

// Operations a client can ask for.
const (
	OpStatus   = "status"   // -> Response.Status
	OpHistory  = "history"  // N -> Response.History
	OpRelaunch = "relaunch" // ID, Force -> Response.Job
	OpReload   = "reload"   // re-read the rules now
	OpPause    = "pause"    // recovery paused until resume
	OpResume   = "resume"
	OpWatch    = "watch" // a Response with Status now and at every change, until the client hangs up
	// OpRestartBus restarts the bus named by ID ("session" or "system"),
	// telling the engine that the restart is ours, so recovery is expected.
	OpRestartBus = "restart-bus"
	// OpLearn makes a rule of the casualty ID ("Always relaunch") in the
	// user's rules file -> Response.Rule (its id).
	OpLearn = "learn"
	// OpPlan is a dry run: what recovery would do if the bus named by ID
	// restarted now -> Response.Plan.
	OpPlan = "plan"
	// OpPeers lists who is on each bus now -> Response.Peers, by bus name.
	OpPeers = "peers"
	// OpTray is the tray child telling what it found of its icon's host
	// (Request.Tray), which Status then carries.
	OpTray = "tray"
	// OpNotify asks the daemon to show the notification Request.Notice.
	OpNotify = "notify"
)

// Request is one line a client sends.
type Request struct {
	Op string `json:"op"`
	ID string `json:"id,omitempty"`
	N  int    `json:"n,omitempty"`
	// Force is OpRelaunch's leave to stop an app that is running on its
	// bus; without it the relaunch fails with ErrAppRunning.
	Force bool `json:"force,omitempty"`
	// Tray is OpTray's report, Notice OpNotify's notification.
	Tray   *TrayHost `json:"tray,omitempty"`
	Notice *Notice   `json:"notice,omitempty"`
	// Kept is OpKept's report.
	Kept *KeptReport `json:"kept,omitempty"`
}

// Response is one line the daemon answers.
type Response struct {
	OK bool `json:"ok"`
	// Error is why a request failed, for people; Code says which of the
	// errors it is (see the package documentation), "" for any other.
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
	// Refusal is why a bus cannot be restarted, with code
	// "cannot-restart".
	Refusal *RestartRefusal           `json:"refusal,omitempty"`
	Status  *Status                   `json:"status,omitempty"`
	History []Recovery                `json:"history,omitempty"`
	Job     *Job                      `json:"job,omitempty"`
	Rule    string                    `json:"rule,omitempty"`
	Plan    []PlannedJob              `json:"plan,omitempty"`
	Peers   map[string][]watcher.Peer `json:"peers,omitempty"`
}

// ErrNotRunning means no daemon answers on the socket.
var ErrNotRunning = errors.New("busmedic is not running")

// ErrRunning means another daemon of the same user holds the socket.
var ErrRunning = errors.New("busmedic is already running")

// DefaultPath returns $XDG_RUNTIME_DIR/busmedic/control.sock.
func DefaultPath() string {
	dir := xdg.RuntimeDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "busmedic-"+itoa(os.Getuid()))
	}
	return filepath.Join(dir, "busmedic", "control.sock")
}

func encodeLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
