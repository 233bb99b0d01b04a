package tray

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
	"golang.org/x/sys/unix"

	"busmedic/assets"
	"busmedic/relaunch/control"
	"busmedic/relaunch/control/controltest"
	"busmedic/watcher/bustest"
)

// deadline bounds every wait in these tests.
const deadline = 20 * time.Second

// backend is a stand-in daemon engine behind a real control socket: the
// tray is tested on its own here, without the recovery engine.
type backend struct {
	*controltest.Daemon
	ops chan string // every request that changes something, as "op id"

	mu    sync.Mutex
	asked map[string]int // how often each op was asked for
}

// record tells the test of op.
func (b *backend) record(op string) {
	b.mu.Lock()
	b.asked[op]++
	b.mu.Unlock()
	b.ops <- op
}

// times returns how often op was asked for.
func (b *backend) times(op string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.asked[op]
}

// nextNotice waits for the next notification a client asked for.
func (b *backend) nextNotice(t *testing.T) control.Notice {
	t.Helper()
	select {
	case n := <-b.Notices():
		return n
	case <-time.After(deadline):
		t.Fatalf("no notification asked for within %s", deadline)
	}
	return control.Notice{}
}

func newBackend() *backend {
	return &backend{ops: make(chan string, 64), asked: map[string]int{}, Daemon: controltest.NewDaemon(control.Status{
		Buses: []control.BusStatus{
			{Name: "session", Up: true, ID: "s1", Since: time.Now(), Peers: 3},
			{Name: "system", Up: true, ID: "y1", Since: time.Now()},
		},
		Apps: []control.AppStatus{{ID: "dunst", Name: "Dunst", Bus: "session", Action: "relaunch", Enabled: true, Running: true}},
	})}
}

func (b *backend) RelaunchNow(ctx context.Context, id string) (control.Job, error) {
	b.record("relaunch " + id)
	return control.Job{App: id, Outcome: control.Relaunched, PID: 42}, nil
}
func (b *backend) RestartBus(ctx context.Context, bus string) error {
	b.record("restart-bus " + bus)
	// The facts reach the tray through the socket; the words are not for
	// the title.
	return &control.RestartRefusal{Bus: "session", PID: 1235, StartedBy: "dbus-launch", StartedByPID: 1234,
		Reason: "refused, in words the tray does not read"}
}
func (b *backend) Learn(id string) (string, error) {
	b.record("learn " + id)
	return "rule-" + id, nil
}
func (b *backend) Pause() {
	b.record("pause")
	b.Set(func(s *control.Status) { s.Paused = true })
}
func (b *backend) Resume() {
	b.record("resume")
	b.Set(func(s *control.Status) { s.Paused = false })
}

// waitOp waits for the backend to be asked for op.
func (b *backend) waitOp(t *testing.T, op string) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case got := <-b.ops:
			if got == op {
				return
			}
			t.Logf("backend: %s", got)
		case <-timer.C:
			t.Fatalf("backend was not asked to %s", op)
		}
	}
}

// serveControl serves b on a control socket for the test's life.
func serveControl(t *testing.T, b control.Backend) string { return controltest.Serve(t, b) }

// snw is a StatusNotifierWatcher, the panel-side registry that items
// announce themselves to: a stand-in for a panel's, which would need a
// display and a desktop's packages. Like KDE's, it keeps an item
// registered by path as SENDER/PATH, lists the items in
// RegisteredStatusNotifierItems and announces each with
// StatusNotifierItemRegistered.
type snw struct {
	conn  *dbus.Conn
	regs  chan registration
	props *prop.Properties

	mu    sync.Mutex
	items []string
	// refuse is how many registrations the watcher still refuses, as a
	// watcher that is not ready yet would.
	refuse int
}

type registration struct {
	Sender  string // the item's connection
	Service string // what it passed: systray passes its object path
	At      time.Time
}

func (w *snw) RegisterStatusNotifierItem(sender dbus.Sender, service string) *dbus.Error {
	item := string(sender) + service
	w.mu.Lock()
	if w.refuse > 0 {
		w.refuse--
		w.mu.Unlock()
		return dbus.MakeFailedError(errors.New("not ready"))
	}
	if !slices.Contains(w.items, item) {
		w.items = append(w.items, item)
	}
	items := slices.Clone(w.items)
	w.mu.Unlock()
	w.props.SetMust(watcherIface, "RegisteredStatusNotifierItems", items)
	select {
	case w.regs <- registration{Sender: string(sender), Service: service, At: time.Now()}:
	default:
	}
	w.conn.Emit(watcherPath, watcherIface+".StatusNotifierItemRegistered", item)
	return nil
}

func (w *snw) RegisterStatusNotifierHost(service string) *dbus.Error { return nil }

// startSNW owns org.kde.StatusNotifierWatcher on the bus until the test
// ends or the bus goes.
func startSNW(t *testing.T, bus *bustest.Bus) *snw {
	t.Helper()
	return startRefusingSNW(t, bus, 0)
}

// startRefusingSNW is startSNW with a watcher that refuses the first
// refuse registrations.
func startRefusingSNW(t *testing.T, bus *bustest.Bus, refuse int) *snw {
	t.Helper()
	conn := connect(t, bus)
	w := &snw{conn: conn, regs: make(chan registration, 16), refuse: refuse}
	if err := conn.Export(w, watcherPath, watcherIface); err != nil {
		t.Fatal(err)
	}
	props, err := prop.Export(conn, watcherPath, prop.Map{watcherIface: {
		"RegisteredStatusNotifierItems":  {Value: []string{}, Emit: prop.EmitTrue},
		"IsStatusNotifierHostRegistered": {Value: true, Emit: prop.EmitTrue},
		"ProtocolVersion":                {Value: int32(0), Emit: prop.EmitFalse},
	}})
	if err != nil {
		t.Fatal(err)
	}
	w.props = props
	if r, err := conn.RequestName("org.kde.StatusNotifierWatcher", dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.kde.StatusNotifierWatcher: %v, %v", r, err)
	}
	return w
}

// next waits for the next registration.
func (w *snw) next(t *testing.T) registration {
	t.Helper()
	select {
	case r := <-w.regs:
		return r
	case <-time.After(deadline):
		t.Fatalf("no StatusNotifierItem registered within %s", deadline)
	}
	return registration{}
}

func connect(t *testing.T, bus *bustest.Bus) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// item reads a registered StatusNotifierItem as a panel does.
type item struct {
	t    *testing.T
	conn *dbus.Conn
	obj  dbus.BusObject
	name string
}

func newItem(t *testing.T, conn *dbus.Conn, r registration) *item {
	return &item{t: t, conn: conn, obj: conn.Object(r.Sender, dbus.ObjectPath(r.Service)), name: r.Sender}
}

// with returns the item for use in subtest t.
func (it *item) with(t *testing.T) *item {
	c := *it
	c.t = t
	return &c
}

// waitSignal waits for the item's signal named member (such as
// "org.kde.StatusNotifierItem.NewIcon").
func (it *item) waitSignal(sigs chan *dbus.Signal, member string) {
	it.t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case s, ok := <-sigs:
			if !ok {
				it.t.Fatalf("connection closed while waiting for a %s signal", member)
			}
			if s.Name == member {
				return
			}
		case <-timer.C:
			it.t.Fatalf("no %s signal within %s", member, deadline)
		}
	}
}

func (it *item) prop(name string) dbus.Variant {
	it.t.Helper()
	v, err := it.obj.GetProperty("org.kde.StatusNotifierItem." + name)
	if err != nil {
		it.t.Fatalf("read %s: %v", name, err)
	}
	return v
}

// str reads a string property.
func (it *item) str(name string) string {
	it.t.Helper()
	s, ok := it.prop(name).Value().(string)
	if !ok {
		it.t.Fatalf("%s is not a string", name)
	}
	return s
}

// looks reports whether the item's Status and IconName are status and
// name, and its pixmaps the state's icon in every size (the fallback of
// panels that find no themed icon).
func (it *item) looks(status, name string, s state) bool {
	it.t.Helper()
	return it.str("Status") == status && it.str("IconName") == name && it.showsIcon(s)
}

// wantLook waits until the item looks so (see looks).
func (it *item) wantLook(sigs chan *dbus.Signal, status, name string, s state) {
	it.t.Helper()
	it.waitFor(sigs, fmt.Sprintf("Status %s, IconName %q, the %s pixmaps", status, name, s.Icon()), func() bool { return it.looks(status, name, s) })
}

func (it *item) pixmaps() []pixmap {
	it.t.Helper()
	var px []pixmap
	if err := it.prop("IconPixmap").Store(&px); err != nil {
		it.t.Fatalf("IconPixmap: %v", err)
	}
	return px
}

func (it *item) tooltip() string {
	it.t.Helper()
	var tip struct {
		Name  string
		Icons []pixmap
		Title string
		Text  string
	}
	if err := it.prop("ToolTip").Store(&tip); err != nil {
		it.t.Fatalf("ToolTip: %v", err)
	}
	return tip.Title
}

// wantIcon waits until the item shows the state's icon in every size: an
// item registers with one, and sets the others just after.
func (it *item) wantIcon(s state) {
	it.t.Helper()
	sigs := it.signals()
	defer it.conn.RemoveSignal(sigs)
	it.waitFor(sigs, "the "+s.Icon()+" icon in every size", func() bool { return it.showsIcon(s) })
}

// showsIcon reports whether the item's pixmaps are the state's icon in
// every size assets has.
func (it *item) showsIcon(s state) bool {
	it.t.Helper()
	px := it.pixmaps()
	if len(px) != len(assets.Sizes()) {
		return false
	}
	for i, size := range assets.Sizes() {
		if px[i].W != int32(size) || px[i].H != int32(size) || !bytes.Equal(px[i].Pix, argb(it.t, assets.PNG(s.Icon(), size))) {
			return false
		}
	}
	return true
}

// argb is a PNG as StatusNotifierItem pixmaps carry it: ARGB32, network
// order, not premultiplied.
func argb(t *testing.T, b []byte) []byte {
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			out = append(out, c.A, c.R, c.G, c.B)
		}
	}
	return out
}

var _ image.Image // image/png registers the decoder used above

// menuItem is one com.canonical.dbusmenu item as read back by GetLayout.
type menuItem struct {
	ID       int32
	Props    map[string]dbus.Variant
	Children []menuItem
}

func (m menuItem) label() string   { s, _ := m.Props["label"].Value().(string); return s }
func (m menuItem) enabled() bool   { b, ok := m.Props["enabled"].Value().(bool); return !ok || b }
func (m menuItem) visible() bool   { b, ok := m.Props["visible"].Value().(bool); return !ok || b }
func (m menuItem) toggled() bool   { v, _ := m.Props["toggle-state"].Value().(int32); return v == 1 }
func (m menuItem) separator() bool { s, _ := m.Props["type"].Value().(string); return s == "separator" }

// find returns the first item, depth first, whose label starts with prefix.
func (m menuItem) find(prefix string) (menuItem, bool) {
	for _, c := range m.Children {
		if strings.HasPrefix(c.label(), prefix) && !c.separator() {
			return c, true
		}
		if f, ok := c.find(prefix); ok {
			return f, true
		}
	}
	return menuItem{}, false
}

// labels lists the visible labels at the top level, "-" for separators.
func (m menuItem) labels() []string {
	var l []string
	for _, c := range m.Children {
		switch {
		case c.separator():
			l = append(l, "-")
		case c.visible():
			l = append(l, c.label())
		}
	}
	return l
}

func (it *item) menuObj() dbus.BusObject {
	it.t.Helper()
	var path dbus.ObjectPath
	if err := it.prop("Menu").Store(&path); err != nil {
		it.t.Fatal(err)
	}
	return it.conn.Object(it.name, path)
}

// layout reads the whole menu. systray answers a first GetLayout with one
// level only (for libdbusmenu-gtk's sake), so a first short answer is read
// again.
func (it *item) layout() menuItem {
	it.t.Helper()
	obj := it.menuObj()
	var root menuItem
	for range 2 {
		var rev uint32
		var raw []any
		call := obj.Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{})
		if call.Err != nil {
			it.t.Fatalf("GetLayout: %v", call.Err)
		}
		if err := call.Store(&rev, &raw); err != nil {
			it.t.Fatalf("GetLayout: %v", err)
		}
		root = parseLayout(it.t, raw)
		if apps, ok := root.find("Apps"); ok && len(apps.Children) > 0 {
			break
		}
	}
	return root
}

func parseLayout(t *testing.T, raw []any) menuItem {
	t.Helper()
	if len(raw) != 3 {
		t.Fatalf("menu layout %v: want (ia{sv}av)", raw)
	}
	m := menuItem{ID: raw[0].(int32), Props: raw[1].(map[string]dbus.Variant)}
	for _, c := range raw[2].([]dbus.Variant) {
		m.Children = append(m.Children, parseLayout(t, c.Value().([]any)))
	}
	return m
}

// click sends a dbusmenu "clicked" event, as a panel does.
func (it *item) click(m menuItem) {
	it.t.Helper()
	call := it.menuObj().Call("com.canonical.dbusmenu.Event", 0, m.ID, "clicked", dbus.MakeVariant(""), uint32(0))
	if call.Err != nil {
		it.t.Fatalf("click %q: %v", m.label(), call.Err)
	}
}

// signals subscribes to the item's signals (NewIcon, NewToolTip, the
// menu's LayoutUpdated…).
func (it *item) signals() chan *dbus.Signal {
	it.t.Helper()
	if err := it.conn.AddMatchSignal(dbus.WithMatchSender(it.name)); err != nil {
		it.t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 256)
	it.conn.Signal(ch)
	return ch
}

// waitFor re-checks cond after each signal from the item until it holds.
func (it *item) waitFor(sigs chan *dbus.Signal, what string, cond func() bool) {
	it.t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for !cond() {
		select {
		case _, ok := <-sigs:
			if !ok {
				it.t.Fatalf("%s: connection closed", what)
			}
		case <-timer.C:
			it.t.Fatalf("%s: not within %s", what, deadline)
		}
	}
}

// syncBuffer collects a child's stderr.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // a value after each write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{written: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.written <- struct{}{}:
	default:
	}
	return s.b.Write(p)
}

// waitText waits until text has been written.
func (s *syncBuffer) waitText(t *testing.T, text string) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for !strings.Contains(s.String(), text) {
		select {
		case <-s.written:
		case <-timer.C:
			t.Fatalf("no %q in:\n%s", text, s)
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// superviseTray runs the tray child (this test binary, see TestMain) under
// Supervise, on the bus and the control socket, until the test ends. PATH
// is set to one directory of the test's, where fakeEditor puts
// busmedic-rules; the tray finds none otherwise.
//
// The child's icon directories are the test's (HOME, XDG_DATA_HOME,
// XDG_DATA_DIRS): busmedic's icons are not installed there unless the
// test installs them (installIcons, then iconEnv).
func superviseTray(t *testing.T, bus *bustest.Bus, socket string, env ...string) *syncBuffer {
	t.Helper()
	home := filepath.Join(bus.Dir(), "home")
	env = append([]string{"HOME=" + home, "XDG_DATA_HOME=" + filepath.Join(home, ".local/share"),
		"XDG_DATA_DIRS=" + filepath.Join(bus.Dir(), "no-data")}, env...)
	stderr := newSyncBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	log := slog.New(slog.NewTextHandler(stderr, nil))
	go func() {
		defer close(done)
		Supervise(ctx, func() *exec.Cmd {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(append(bus.Env(), childEnv+"=tray", socketEnv+"="+socket, "PATH="+binDir(bus)), env...)
			cmd.Stderr = stderr
			return cmd
		}, log)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		ours, upstream := races(stderr.String())
		if ours > 0 {
			t.Errorf("the tray child reported %d data race(s)", ours)
		}
		if upstream > 0 {
			t.Logf("the tray child reported %d data race(s) within fyne.io/systray alone (upstream: see races)", upstream)
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("tray stderr:\n%s", stderr)
		}
	})
	return stderr
}

// matchRules reports the match rules connections add on the bus (sender,
// rule), seen through a monitor connection: how a test knows that systray
// listens for a new StatusNotifierWatcher, which it starts doing only
// after its first registration returns.
func matchRules(t *testing.T, bus *bustest.Bus) <-chan [2]string {
	t.Helper()
	conn := connect(t, bus)
	msgs := make(chan *dbus.Message, 64)
	// Every message goes to msgs, the reply to BecomeMonitor too: a
	// monitor must never answer, which godbus would do for method calls.
	conn.Eavesdrop(msgs)
	conn.BusObject().Go("org.freedesktop.DBus.Monitoring.BecomeMonitor", 0, nil,
		[]string{"type='method_call',interface='org.freedesktop.DBus',member='AddMatch'"}, uint32(0))
	out := make(chan [2]string, 64)
	go func() {
		for m := range msgs {
			if m.Type != dbus.TypeMethodCall || len(m.Body) != 1 {
				continue
			}
			sender, _ := m.Headers[dbus.FieldSender].Value().(string)
			rule, _ := m.Body[0].(string)
			select {
			case out <- [2]string{sender, rule}:
			default:
			}
		}
	}()
	return out
}

// waitMatchRule waits for sender to add a rule containing text.
func waitMatchRule(t *testing.T, rules <-chan [2]string, sender, text string) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case r := <-rules:
			if r[0] == sender && strings.Contains(r[1], text) {
				return
			}
		case <-timer.C:
			t.Fatalf("%s added no match rule with %q", sender, text)
		}
	}
}

// binDir is the PATH of the tray children of the bus's test.
func binDir(bus *bustest.Bus) string { return filepath.Join(bus.Dir(), "bin") }

// fakeEditor installs a busmedic-rules that writes its arguments to a FIFO,
// and returns them as the tray starts it.
func fakeEditor(t *testing.T, bus *bustest.Bus) <-chan string {
	t.Helper()
	dir := binDir(bus)
	fifo := filepath.Join(bus.Dir(), "editor-args")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"$@\" > " + fifo + "\n"
	if err := os.WriteFile(filepath.Join(dir, "busmedic-rules"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	args := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Blocks until the editor opens the FIFO, or the cleanup does.
		b, _ := os.ReadFile(fifo)
		args <- strings.TrimSpace(string(b))
	}()
	t.Cleanup(func() {
		// Unblock the reader if the editor never ran.
		if f, err := os.OpenFile(fifo, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		<-done
	})
	return args
}

// hicolorIndex is a hicolor index.theme with the directories installIcons
// fills: the system's has these and many more.
const hicolorIndex = `[Icon Theme]
Name=Hicolor
Directories=22x22/status,scalable/status

[22x22/status]
Size=22
Context=Status
Type=Threshold

[scalable/status]
Size=16
MinSize=8
MaxSize=512
Context=Status
Type=Scalable
`

// installIcons installs busmedic's tray icons as scripts/install-files
// does, under the data directory data (its icons/hicolor), with an
// index.theme for hicolor, and returns the environment that makes data
// the tray child's only data directory.
func installIcons(t *testing.T, data string) []string {
	t.Helper()
	hicolor := filepath.Join(data, "icons", "hicolor")
	files := map[string][]byte{"index.theme": []byte(hicolorIndex)}
	for _, icon := range assets.Icons() {
		name := assets.IconName(icon)
		files["22x22/status/"+name+".png"] = assets.PNG(icon, 22)
		files["scalable/status/"+name+".svg"] = assets.SVG(icon)
		files["scalable/status/"+name+"-symbolic.svg"] = assets.SymbolicSVG(icon)
	}
	for rel, b := range files {
		p := filepath.Join(hicolor, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"XDG_DATA_DIRS=" + data}
}

// races counts the race detector's reports in a tray child's stderr: ours,
// where busmedic's code makes either access, and upstream, where both
// accesses are fyne.io/systray's own. Stock systray (v1.12.2) reads its
// menu's version in GetLayout under one lock and writes it in refresh
// under another; the project uses systray unforked, so that race, which
// no code of ours takes part in, is logged rather than failed.
func races(stderr string) (ours, upstream int) {
	for _, report := range strings.Split(stderr, "WARNING: DATA RACE")[1:] {
		var accessors []string // the function making each access
		lines := strings.Split(report, "\n")
		for i, l := range lines {
			if (strings.Contains(l, " at 0x") && strings.Contains(l, " by ")) && i+1 < len(lines) {
				accessors = append(accessors, strings.TrimSpace(lines[i+1]))
			}
			if strings.HasPrefix(l, "==================") {
				break
			}
		}
		inSystray := len(accessors) == 2
		for _, f := range accessors {
			inSystray = inSystray && strings.HasPrefix(f, "fyne.io/systray.")
		}
		if inSystray {
			upstream++
		} else {
			ours++
		}
	}
	return ours, upstream
}
