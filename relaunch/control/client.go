package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"busmedic/watcher"
)

// Client talks to a running daemon. It is safe for concurrent use, and
// long-lived clients (the tray, the editor) keep one for their lifetime:
// it connects when a request needs it and again after the daemon went
// away and came back.
//
// A request takes the connection the last one left, or connects anew
// when that one is in use (so that a slow relaunch holds up no other
// request) or missing; a connection the daemon closed meanwhile (it closes
// those idle for DefaultIdleTimeout) is replaced and the request sent
// again, since the daemon did not read it. Watch and Follow stream on
// connections of their own.
type Client struct {
	path string

	mu   sync.Mutex
	idle *conn // the connection kept between requests, or nil
}

// conn is one connection to the daemon, used by one request at a time.
type conn struct {
	net.Conn
	sc *bufio.Scanner
}

// NewClient returns a client of the daemon whose socket is at path. It
// connects at its first request.
func NewClient(path string) *Client { return &Client{path: path} }

// Dial connects to the daemon's socket at path. It returns an error wrapping
// ErrNotRunning if nothing listens there.
func Dial(ctx context.Context, path string) (*Client, error) {
	c := NewClient(path)
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.idle = cn
	return c, nil
}

// Close hangs up the connection kept between requests. The client stays
// usable: a request after Close connects again.
func (c *Client) Close() error {
	c.mu.Lock()
	cn := c.idle
	c.idle = nil
	c.mu.Unlock()
	if cn == nil {
		return nil
	}
	return cn.Close()
}

func (c *Client) dial(ctx context.Context) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotRunning, err) // err names the path
	}
	sc := bufio.NewScanner(nc)
	sc.Buffer(nil, 16<<20)
	return &conn{Conn: nc, sc: sc}, nil
}

// take returns the kept connection, or a new one; reused says which.
func (c *Client) take(ctx context.Context) (cn *conn, reused bool, err error) {
	c.mu.Lock()
	cn, c.idle = c.idle, nil
	c.mu.Unlock()
	if cn != nil {
		return cn, true, nil
	}
	cn, err = c.dial(ctx)
	return cn, false, err
}

// keep makes cn the connection for the next request, unless one is kept
// already.
func (c *Client) keep(cn *conn) {
	c.mu.Lock()
	if c.idle == nil {
		c.idle, cn = cn, nil
	}
	c.mu.Unlock()
	if cn != nil {
		cn.Close()
	}
}

func (c *Client) call(ctx context.Context, req Request) (Response, error) {
	line, err := encodeLine(req)
	if err != nil {
		return Response{}, fmt.Errorf("control %s: %w", req.Op, err)
	}
	cn, reused, err := c.take(ctx)
	if err != nil {
		return Response{}, err
	}
	resp, err := cn.roundTrip(ctx, line)
	if reused && errors.Is(err, errUnread) && ctx.Err() == nil {
		// The daemon closed the kept connection before this request:
		// send it again on a new one.
		cn.Close()
		if cn, err = c.dial(ctx); err != nil {
			return Response{}, err
		}
		resp, err = cn.roundTrip(ctx, line)
	}
	switch {
	case err != nil:
		cn.Close()
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return Response{}, fmt.Errorf("control %s: %w", req.Op, err)
	case !resp.OK:
		// The daemon closes some connections after a failure (a line
		// too long, too many clients): this one is not worth keeping.
		cn.Close()
		return resp, resp.err()
	case ctx.Err() != nil:
		// ctx ended as the answer came, and broke the connection.
		cn.Close()
	default:
		c.keep(cn)
	}
	return resp, nil
}

// errUnread is a request the daemon did not read: it had closed the
// connection before, or closed it for want of requests.
var errUnread = errors.New("connection closed by the daemon before the request")

// roundTrip sends one request line and reads the answer, until ctx is done.
func (cn *conn) roundTrip(ctx context.Context, line []byte) (Response, error) {
	stop := context.AfterFunc(ctx, func() { cn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := cn.Write(line); err != nil {
		// A write fails once the daemon has closed its end, so the
		// request went nowhere. The daemon may have said why it closed
		// (too many clients, idle) before it did: that is waiting to
		// be read.
		if resp, rerr := cn.read(); rerr == nil && !resp.OK && !closedIdle(resp) {
			return resp, nil
		}
		return Response{}, fmt.Errorf("%w: %v", errUnread, err)
	}
	resp, err := cn.read()
	if err == nil && closedIdle(resp) {
		// Closed for idleness just as the request came: not read.
		return Response{}, errUnread
	}
	if errors.Is(err, syscall.ECONNRESET) {
		// A Unix socket resets only when its peer closes with data
		// unread: the daemon went away (it restarted) before it read
		// the request.
		return Response{}, fmt.Errorf("%w: %v", errUnread, err)
	}
	return resp, err
}

// closedIdle reports whether resp is the daemon closing a connection that
// was idle too long.
func closedIdle(resp Response) bool { return !resp.OK && errorOf(resp.Code) == errIdle }

// errHungUp is a connection the daemon closed without a word.
var errHungUp = errors.New("daemon hung up")

func (cn *conn) read() (Response, error) {
	if !cn.sc.Scan() {
		if err := cn.sc.Err(); err != nil {
			return Response{}, err
		}
		return Response{}, errHungUp
	}
	var resp Response
	if err := json.Unmarshal(cn.sc.Bytes(), &resp); err != nil {
		return Response{}, fmt.Errorf("bad answer: %w", err)
	}
	return resp, nil
}

// Status returns what the daemon knows now.
func (c *Client) Status(ctx context.Context) (Status, error) {
	resp, err := c.call(ctx, Request{Op: OpStatus})
	if err != nil || resp.Status == nil {
		return Status{}, errors.Join(err, errIf(resp.Status == nil && err == nil, "no status in answer"))
	}
	return *resp.Status, nil
}

// History returns the last n recoveries, newest first (n <= 0: all kept).
func (c *Client) History(ctx context.Context, n int) ([]Recovery, error) {
	resp, err := c.call(ctx, Request{Op: OpHistory, N: n})
	if err != nil {
		return nil, err
	}
	return orEmpty(resp.History), nil
}

// Relaunch asks the daemon to recover the app (a rule id or a casualty id)
// now, and returns the job's outcome. An app that is running on its bus
// is stopped and started again only with force; without, the daemon
// refuses with ErrAppRunning, for the client to ask its user.
func (c *Client) Relaunch(ctx context.Context, id string, force bool) (Job, error) {
	resp, err := c.call(ctx, Request{Op: OpRelaunch, ID: id, Force: force})
	var job Job
	if resp.Job != nil {
		job = *resp.Job
	}
	return job, err
}

// Reload makes the daemon re-read the rules.
func (c *Client) Reload(ctx context.Context) error {
	_, err := c.call(ctx, Request{Op: OpReload})
	return err
}

// RestartBus asks the daemon to restart the bus ("session" or "system").
func (c *Client) RestartBus(ctx context.Context, bus string) error {
	_, err := c.call(ctx, Request{Op: OpRestartBus, ID: bus})
	return err
}

// Learn makes a rule of a casualty in the user's rules file and returns the
// new rule's id.
func (c *Client) Learn(ctx context.Context, casualty string) (string, error) {
	resp, err := c.call(ctx, Request{Op: OpLearn, ID: casualty})
	return resp.Rule, err
}

// Plan returns what recovery would do if bus ("session" or "system")
// restarted now.
func (c *Client) Plan(ctx context.Context, bus string) ([]PlannedJob, error) {
	resp, err := c.call(ctx, Request{Op: OpPlan, ID: bus})
	if err != nil {
		return nil, err
	}
	return orEmpty(resp.Plan), nil
}

// Peers returns who is on each bus now, by bus name.
func (c *Client) Peers(ctx context.Context) (map[string][]watcher.Peer, error) {
	resp, err := c.call(ctx, Request{Op: OpPeers})
	return resp.Peers, err
}

// Pause stops recovery until Resume.
func (c *Client) Pause(ctx context.Context) error {
	_, err := c.call(ctx, Request{Op: OpPause})
	return err
}

// Resume undoes Pause.
func (c *Client) Resume(ctx context.Context) error {
	_, err := c.call(ctx, Request{Op: OpResume})
	return err
}

// ReportTray tells the daemon what the tray found of its icon's host; the
// tray child sends it at every change.
func (c *Client) ReportTray(ctx context.Context, h TrayHost) error {
	_, err := c.call(ctx, Request{Op: OpTray, Tray: &h})
	return err
}

// ReportKept tells the daemon what the keeper keeps on r.Bus; the keeper
// sends it at every change, and in full after connecting to a daemon.
func (c *Client) ReportKept(ctx context.Context, r KeptReport) error {
	_, err := c.call(ctx, Request{Op: OpKept, Kept: &r})
	return err
}

// Notify asks the daemon to show n as a desktop notification.
func (c *Client) Notify(ctx context.Context, n Notice) error {
	_, err := c.call(ctx, Request{Op: OpNotify, Notice: &n})
	return err
}

// Watch sends the status now and at every change to the returned channel,
// until ctx is done or the daemon goes; then it closes the channel. It
// streams on a connection of its own: the client serves requests
// meanwhile. Follow, unlike Watch, stays with the daemon through its
// restarts.
func (c *Client) Watch(ctx context.Context) (<-chan Status, error) {
	cn, err := c.watch(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan Status)
	go func() {
		defer close(out)
		_ = cn.stream(ctx, func(st Status) bool {
			select {
			case out <- st:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	return out, nil
}

// watch opens a connection that carries the status at every change.
func (c *Client) watch(ctx context.Context) (*conn, error) {
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	line, err := encodeLine(Request{Op: OpWatch})
	if err == nil {
		_, err = cn.Write(line)
	}
	if err != nil {
		cn.Close()
		return nil, fmt.Errorf("control watch: %w", err)
	}
	return cn, nil
}

// stream passes each status the watch connection brings to each, until
// each returns false, ctx is done or the stream ends, and closes the
// connection. It returns why the stream ended: ctx's error, the daemon's
// refusal (too many clients), or ErrNotRunning when the daemon hung up.
func (cn *conn) stream(ctx context.Context, each func(Status) bool) error {
	defer cn.Close()
	stop := context.AfterFunc(ctx, func() { cn.Close() })
	defer stop()
	for {
		resp, err := cn.read()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errHungUp):
			return fmt.Errorf("%w (the daemon hung up)", ErrNotRunning)
		case err != nil:
			return fmt.Errorf("control watch: %w", err)
		case !resp.OK:
			return resp.err()
		case resp.Status == nil:
			return errors.New("control watch: no status in answer")
		}
		if !each(*resp.Status) {
			return ctx.Err()
		}
	}
}

// Follow's pause before it connects again: followRetryMin after a
// connection that brought a status, doubling while the daemon stays away,
// up to followRetryMax, which bounds how long a client goes on saying
// "not running" after the daemon started.
const (
	followRetryMin = 100 * time.Millisecond
	followRetryMax = 2 * time.Second
)

// Follow reports the daemon's status now and at every change, and stays
// with the daemon through its restarts, until ctx is done. report gets
// each status with a nil error, and a nil status with why whenever there
// is no daemon to follow (errors.Is(err, ErrNotRunning) when none
// answers), then Follow connects again after a pause (100 ms doubling up
// to 2 s). report runs on Follow's goroutine, one call at a time; Follow
// returns once ctx is done.
func (c *Client) Follow(ctx context.Context, report func(st *Status, err error)) {
	delay := followRetryMin
	for {
		got := false
		cn, err := c.watch(ctx)
		if err == nil {
			err = cn.stream(ctx, func(st Status) bool {
				got = true
				report(&st, nil)
				return ctx.Err() == nil
			})
		}
		if ctx.Err() != nil {
			return
		}
		if got {
			delay = followRetryMin
		}
		report(nil, err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, followRetryMax)
	}
}

// FollowReplays sends each replay of the keeper to out as the daemon's
// status brings it (Follow: through the daemon's restarts), once, until
// ctx is done; replays from before since are old news. "busmedic watch"
// prints them among the bus events.
func (c *Client) FollowReplays(ctx context.Context, since time.Time, out chan<- Replay) {
	seen := map[string]bool{}
	c.Follow(ctx, func(st *Status, err error) {
		if st == nil {
			return
		}
		for _, r := range newReplays(st.Kept, seen) {
			if r.Time.Before(since) {
				continue
			}
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
		}
	})
}

func errIf(cond bool, msg string) error {
	if cond {
		return errors.New(msg)
	}
	return nil
}
