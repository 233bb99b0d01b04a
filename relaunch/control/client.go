package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"

	"busmedic/watcher"
)

// Client talks to a running daemon. It is safe for concurrent use; requests
// are answered in turn.
type Client struct {
	mu   sync.Mutex
	conn net.Conn
	sc   *bufio.Scanner
}

// Dial connects to the daemon's socket at path. It returns an error wrapping
// ErrNotRunning if nothing listens there.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w (no daemon on %s: %v)", ErrNotRunning, path, err)
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(nil, 16<<20)
	return &Client{conn: conn, sc: sc}, nil
}

// Close hangs up.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) call(ctx context.Context, req Request) (Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	defer stop()
	line, err := encodeLine(req)
	if err != nil {
		return Response{}, err
	}
	if _, err := c.conn.Write(line); err != nil {
		// A server that refused the connection (too many clients) said
		// why before it closed it; the reason is waiting to be read.
		if resp, rerr := c.read(); rerr == nil && !resp.OK && resp.Error != "" {
			return resp, resp.err()
		}
		return Response{}, fmt.Errorf("control %s: %w", req.Op, err)
	}
	resp, err := c.read()
	if err != nil {
		return Response{}, fmt.Errorf("control %s: %w", req.Op, err)
	}
	if !resp.OK {
		return resp, resp.err()
	}
	return resp, nil
}

func (c *Client) read() (Response, error) {
	if !c.sc.Scan() {
		if err := c.sc.Err(); err != nil {
			return Response{}, err
		}
		return Response{}, errors.New("daemon hung up")
	}
	var resp Response
	if err := json.Unmarshal(c.sc.Bytes(), &resp); err != nil {
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
	return resp.History, err
}

// Relaunch asks the daemon to recover the app (a rule id or a casualty id)
// now, and returns the job's outcome.
func (c *Client) Relaunch(ctx context.Context, id string) (Job, error) {
	resp, err := c.call(ctx, Request{Op: OpRelaunch, ID: id})
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
	return resp.Plan, err
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

// Watch sends the status now and at every change to the returned channel,
// until ctx is done or the daemon goes; then it closes the channel. The
// client is used up by it: make another for requests.
func (c *Client) Watch(ctx context.Context) (<-chan Status, error) {
	c.mu.Lock()
	line, err := encodeLine(Request{Op: OpWatch})
	if err == nil {
		_, err = c.conn.Write(line)
	}
	if err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("control watch: %w", err)
	}
	out := make(chan Status)
	go func() {
		defer c.mu.Unlock()
		defer close(out)
		stop := context.AfterFunc(ctx, func() { c.conn.Close() })
		defer stop()
		for {
			resp, err := c.read()
			if err != nil || resp.Status == nil {
				return
			}
			select {
			case out <- *resp.Status:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func errIf(cond bool, msg string) error {
	if cond {
		return errors.New(msg)
	}
	return nil
}
