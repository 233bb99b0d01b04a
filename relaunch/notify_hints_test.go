package relaunch

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// relaunchNotice is a notice with a button that has a command and one
// that has none.
var relaunchNotice = Notice{
	Title:    "firefox lost its bus connection",
	Body:     "The session bus restarted & firefox did not come back.",
	Critical: true,
	Actions: []Action{
		{Key: "relaunch", Label: "Relaunch", Command: "busmedic relaunch firefox"},
		{Key: "later", Label: "Not now"},
	},
}

// showAsync runs n.Show in a goroutine; its result comes on the returned
// channel.
func showAsync(ctx context.Context, n *DesktopNotifier, notice Notice) <-chan notifyResult {
	res := make(chan notifyResult, 1)
	go func() {
		key, err := n.Show(ctx, notice)
		res <- notifyResult{key, err}
	}()
	return res
}

// hint returns the hint name of got, failing the test if it is missing or
// not of type T.
func hint[T any](t *testing.T, got bustest.Notification, name string) T {
	t.Helper()
	v, ok := got.Hints[name]
	if !ok {
		t.Fatalf("no %s hint in %v", name, got.Hints)
	}
	x, ok := v.Value().(T)
	if !ok {
		t.Fatalf("hint %s is %s, not %T", name, v.Signature(), x)
	}
	return x
}

// TestShowHints reads notifications back from a notification server on a
// real bus (bustest.Notifications): every one carries its urgency and the
// desktop entry and icon of its sender; buttons go only to a server that
// lists "actions", and a server without shows the commands in the body.
func TestShowHints(t *testing.T) {
	ctx := context.Background()
	newNotifier := func(bus *bustest.Bus) *DesktopNotifier {
		return &DesktopNotifier{Address: bus.Address, AppName: "busmedic", Icon: "busmedic", DesktopEntry: "busmedic",
			Log: testLogger(t)}
	}

	t.Run("with actions", func(t *testing.T) {
		bus := bustest.New(t)
		srv := bus.StartNotifications("actions", "body", "body-markup")
		n := newNotifier(bus)
		res := showAsync(ctx, n, relaunchNotice)
		got := srv.Next()
		if got.AppName != "busmedic" || got.AppIcon != "busmedic" || got.Summary != relaunchNotice.Title {
			t.Errorf("sender %q, icon %q, summary %q", got.AppName, got.AppIcon, got.Summary)
		}
		if want := []string{"relaunch", "Relaunch", "later", "Not now"}; !slices.Equal(got.Actions, want) {
			t.Errorf("actions %q, want %q", got.Actions, want)
		}
		// The server reads markup: "&" is escaped; the buttons say
		// what to do, the body does not.
		if want := "The session bus restarted &amp; firefox did not come back."; got.Body != want {
			t.Errorf("body %q, want %q", got.Body, want)
		}
		if u := hint[byte](t, got, "urgency"); u != 2 {
			t.Errorf("urgency %d, want 2 (critical)", u)
		}
		if d := hint[string](t, got, "desktop-entry"); d != "busmedic" {
			t.Errorf("desktop-entry %q", d)
		}
		srv.Invoke(got.ID, "relaunch")
		if r := within(t, "Show to return", res); r.err != nil || r.key != "relaunch" {
			t.Errorf("Show = %q, %v; want relaunch", r.key, r.err)
		}

		// Notify, through the Notifier interface: normal urgency.
		res = notifyAsync(ctx, n)
		got = srv.Next()
		if u := hint[byte](t, got, "urgency"); u != 1 || got.Body != "body" {
			t.Errorf("Notify: urgency %d, body %q; want 1 (normal), body", u, got.Body)
		}
		srv.Dismiss(got.ID)
		if r := within(t, "Notify to return", res); r.err != nil || r.key != "" {
			t.Errorf("Notify = %q, %v; want \"\" (closed)", r.key, r.err)
		}
		if c := srv.CapabilityCalls(); c != 1 {
			t.Errorf("the server was asked its capabilities %d times for 2 notifications, want once", c)
		}
	})

	t.Run("without actions", func(t *testing.T) {
		bus := bustest.New(t)
		srv := bus.StartNotifications("body")
		n := newNotifier(bus)
		// Nothing to wait for: Show returns once the notification is shown.
		key, err := n.Show(ctx, relaunchNotice)
		if err != nil || key != "" {
			t.Errorf("Show = %q, %v; want \"\" at once", key, err)
		}
		got := srv.Next()
		if len(got.Actions) != 0 {
			t.Errorf("actions %q sent to a server without actions", got.Actions)
		}
		if want := relaunchNotice.Body + "\nRelaunch: run busmedic relaunch firefox"; got.Body != want {
			t.Errorf("body %q, want %q", got.Body, want)
		}
		if u := hint[byte](t, got, "urgency"); u != 2 {
			t.Errorf("urgency %d, want 2", u)
		}
		if len(srv.Closed()) != 0 {
			t.Errorf("notification taken off the screen: %v", srv.Closed())
		}
	})

	t.Run("capabilities per server", func(t *testing.T) {
		bus := bustest.New(t)
		n := newNotifier(bus)
		show := func(srv *bustest.Notifications) bustest.Notification {
			t.Helper()
			res := showAsync(ctx, n, relaunchNotice)
			got := srv.Next()
			if len(got.Actions) > 0 {
				srv.Invoke(got.ID, "later")
			}
			if r := within(t, "Show to return", res); r.err != nil {
				t.Fatalf("Show: %v", r.err)
			}
			return got
		}
		first := bus.StartNotifications("actions")
		show(first)
		show(first)
		if c := first.CapabilityCalls(); c != 1 {
			t.Errorf("first server asked %d times, want once", c)
		}
		// A bus restart: the new bus's server is the first to connect
		// again, and gets the same unique name (:1.0) as the old one,
		// but it shows no buttons.
		bus.Restart()
		second := bus.StartNotifications("body")
		if got := show(second); len(got.Actions) != 0 || second.CapabilityCalls() != 1 {
			t.Errorf("server after a restart (no actions): actions %q, asked %d times", got.Actions, second.CapabilityCalls())
		}
		// Another server on the same bus: it is asked, and its answer
		// counts.
		second.Stop()
		third := bus.StartNotifications("actions")
		if got := show(third); !slices.Equal(got.Actions, relaunchNotice.pairs()) || third.CapabilityCalls() != 1 {
			t.Errorf("another server on the bus: actions %q, asked %d times", got.Actions, third.CapabilityCalls())
		}
	})

	t.Run("capabilities unknown", func(t *testing.T) {
		// A server that does not implement GetCapabilities gets the
		// buttons, and the body tells the commands too.
		bus := bustest.New(t)
		srv := startNoCapsServer(t, bus)
		n := newNotifier(bus)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		res := showAsync(cctx, n, relaunchNotice)
		got := within(t, "the notification shown", srv.got)
		if !slices.Equal(got.Actions, relaunchNotice.pairs()) {
			t.Errorf("actions %q, want %q", got.Actions, relaunchNotice.pairs())
		}
		if want := relaunchNotice.Body + "\nRelaunch: run busmedic relaunch firefox"; got.Body != want {
			t.Errorf("body %q, want %q", got.Body, want)
		}
		cancel() // nobody answers: Show waits for ctx
		if r := within(t, "Show to return", res); r.err == nil {
			t.Errorf("Show = %q, nil; want ctx's error", r.key)
		}
	})
}

// The notify action's question, read back from a notification server: it
// is critical (the app did not come back); with buttons where the server
// shows them, else with the command that relaunches the app.
func TestNotifyActionNotification(t *testing.T) {
	for _, tc := range []struct {
		name    string
		caps    []string
		outcome control.Outcome
	}{
		{"with actions", []string{"actions", "body"}, control.Relaunched},
		{"without actions", []string{"body"}, control.Notified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, `
[[app]]
id = "asker"
names = ["org.example.Asker"]
exec = ["TESTAPP", "-name", "org.example.Asker", "-mode", "exit"]
action = "notify"
grace = "100ms"
`, func(c *Config, bus *bustest.Bus) {
				c.Notifier = &DesktopNotifier{Address: bus.Address, Wait: 20 * time.Second}
			})
			h.bus.StartApp("-name", "org.example.Asker", "-mode", "exit")
			h.waitOwner("org.example.Asker", 0)
			h.bus.Kill()
			h.bus.Start()
			id := h.waitUp()
			srv := h.bus.StartNotifications(tc.caps...)
			got := srv.Next()
			if u := hint[byte](t, got, "urgency"); u != 2 {
				t.Errorf("urgency %d, want 2 (critical)", u)
			}
			command := "\nRelaunch: run busmedic relaunch asker"
			if slices.Contains(tc.caps, "actions") {
				if !slices.Equal(got.Actions, []string{"relaunch", "Relaunch"}) || strings.Contains(got.Body, command) {
					t.Errorf("actions %q, body %q", got.Actions, got.Body)
				}
				srv.Invoke(got.ID, "relaunch")
			} else if len(got.Actions) != 0 || !strings.HasSuffix(got.Body, command) {
				t.Errorf("actions %q, body %q; want none, and %q", got.Actions, got.Body, command)
			}
			rec := h.waitRecovery(id)
			if j := jobOf(t, rec, "asker"); j.Outcome != tc.outcome {
				t.Errorf("asker: %s %q, want %s", j.Outcome, j.Reason, tc.outcome)
			}
		})
	}
}

// noCapsServer is a notification server without GetCapabilities, which
// records what it is sent and keeps every notification open.
type noCapsServer struct {
	got chan bustest.Notification
}

func (s *noCapsServer) Notify(app string, replaces uint32, icon, summary, body string, actions []string,
	hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	s.got <- bustest.Notification{ID: 1, AppName: app, AppIcon: icon, Summary: summary, Body: body, Actions: actions, Hints: hints}
	return 1, nil
}

func (s *noCapsServer) CloseNotification(id uint32) *dbus.Error { return nil }

func startNoCapsServer(t *testing.T, bus *bustest.Bus) *noCapsServer {
	t.Helper()
	conn, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &noCapsServer{got: make(chan bustest.Notification, 4)}
	if err := conn.Export(s, notifyPath, notifyName); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(notifyName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("request name: %v %v", reply, err)
	}
	return s
}

func TestBodyWithCommands(t *testing.T) {
	for _, tc := range []struct {
		body    string
		actions []Action
		want    string
	}{
		{"b", nil, "b"},
		{"b", []Action{{Key: "x", Label: "Not now"}}, "b"},
		{"b", []Action{{Key: "r", Label: "Restart now", Command: "busmedic restart-bus session"}},
			"b\nRestart now: run busmedic restart-bus session"},
		{"", []Action{{Key: "s", Label: "Show", Command: "busmedic history"}, {Key: "a", Label: "Add rule", Command: "busmedic rules edit"}},
			"Show: run busmedic history\nAdd rule: run busmedic rules edit"},
	} {
		if got := bodyWithCommands(tc.body, tc.actions); got != tc.want {
			t.Errorf("bodyWithCommands(%q, %v) = %q, want %q", tc.body, tc.actions, got, tc.want)
		}
	}
	if got := noticeActions([]string{"a", "A", "b"}); !slices.Equal(got, []Action{{Key: "a", Label: "A"}, {Key: "b", Label: "b"}}) {
		t.Errorf("noticeActions = %v", got)
	}
}

// ShowNotice gives a plain Notifier the title, body and actions, and a
// DesktopNotifier the whole notice.
func TestShowNotice(t *testing.T) {
	plain := &recordingNotifier{}
	key, err := ShowNotice(context.Background(), plain, relaunchNotice)
	if err != nil || key != "chosen" || plain.title != relaunchNotice.Title || plain.body != relaunchNotice.Body ||
		!slices.Equal(plain.actions, []string{"relaunch", "Relaunch", "later", "Not now"}) {
		t.Errorf("plain notifier got %+v; ShowNotice = %q, %v", plain, key, err)
	}

	bus := bustest.New(t)
	srv := bus.StartNotifications()
	key, err = ShowNotice(context.Background(), &DesktopNotifier{Address: bus.Address}, relaunchNotice)
	if got := srv.Next(); err != nil || key != "" || hint[byte](t, got, "urgency") != 2 {
		t.Errorf("DesktopNotifier: ShowNotice = %q, %v; urgency %v", key, err, got.Hints["urgency"])
	}
}

type recordingNotifier struct {
	title, body string
	actions     []string
}

func (r *recordingNotifier) Notify(ctx context.Context, title, body string, actions []string) (string, error) {
	r.title, r.body, r.actions = title, body, actions
	return "chosen", nil
}
