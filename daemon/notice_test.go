package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"busmedic/appdb"
	"busmedic/assets"
	"busmedic/relaunch"
	"busmedic/relaunch/control"
)

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("icon"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAppIcon: the themed name where the icon theme has busmedic's icon,
// else the file installed beside the executable, else none.
func TestAppIcon(t *testing.T) {
	root := t.TempDir()
	themed := filepath.Join(root, "themed/icons")
	touch(t, filepath.Join(themed, "hicolor/64x64/apps/busmedic.png"))
	if err := os.WriteFile(filepath.Join(themed, "hicolor/index.theme"),
		[]byte("[Icon Theme]\nName=Hicolor\nDirectories=64x64/apps\n\n[64x64/apps]\nSize=64\nType=Fixed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(root, "opt/busmedic")
	touch(t, filepath.Join(prefix, "share/icons/hicolor/64x64/apps/busmedic.png"))
	empty := filepath.Join(root, "empty")

	for _, tc := range []struct {
		name string
		dirs []string
		exe  string
		want string
	}{
		{"in the theme", []string{empty, themed}, filepath.Join(prefix, "bin/busmedic"), "busmedic"},
		{"beside the executable", []string{empty}, filepath.Join(prefix, "bin/busmedic"),
			"file://" + filepath.Join(prefix, "share/icons/hicolor/64x64/apps/busmedic.png")},
		{"not installed", []string{empty}, filepath.Join(root, "src/busmedic"), ""},
		{"no executable", []string{empty}, "", ""},
	} {
		if got := appIcon(tc.dirs, tc.exe); got != tc.want {
			t.Errorf("%s: appIcon = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestFirstRunNotifications reads the first-run offer back from a
// notification server on a real bus, through the daemon's notifier: it
// names busmedic's desktop entry and icon, has normal urgency, and has its
// buttons where the server shows them; where it does not, the body tells
// the command instead and nothing waits for an answer.
func TestFirstRunNotifications(t *testing.T) {
	ctx := context.Background()

	t.Run("with actions", func(t *testing.T) {
		bus, catalog := legacyCatalog(t)
		srv := bus.StartNotifications("actions", "body")
		n := &relaunch.DesktopNotifier{Address: bus.Address, DesktopEntry: desktopEntry, Icon: iconName}
		path := filepath.Join(t.TempDir(), "apps.toml")
		done := make(chan error, 1)
		go func() {
			done <- firstRunWith(ctx, discard, bus.Address(), path, catalog, func(notice relaunch.Notice) (string, error) {
				return n.Show(ctx, notice)
			})
		}()
		got := srv.Next()
		if got.AppIcon != "busmedic" || got.Hints["desktop-entry"].Value() != assets.ID || got.Hints["urgency"].Value() != byte(1) {
			t.Errorf("icon %q, hints %v; want busmedic, desktop-entry %s, urgency 1", got.AppIcon, got.Hints, assets.ID)
		}
		if want := []string{offerAdd, "Add rule", offerNotNow, "Not now"}; !slices.Equal(got.Actions, want) {
			t.Errorf("actions %q, want %q", got.Actions, want)
		}
		if strings.Contains(got.Body, "run busmedic") {
			t.Errorf("body tells a command beside the buttons: %q", got.Body)
		}
		srv.Invoke(got.ID, offerAdd)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if set, err := appdb.CheckFile(path); err != nil || len(set.Rules()) != 1 {
			t.Errorf("rules after Add rule: %v, %v", set, err)
		}
	})

	t.Run("without actions", func(t *testing.T) {
		bus, catalog := legacyCatalog(t)
		srv := bus.StartNotifications("body")
		n := &relaunch.DesktopNotifier{Address: bus.Address, DesktopEntry: desktopEntry, Icon: iconName}
		path := filepath.Join(t.TempDir(), "apps.toml")
		err := firstRunWith(ctx, discard, bus.Address(), path, catalog, func(notice relaunch.Notice) (string, error) {
			return n.Show(ctx, notice)
		})
		if err != nil {
			t.Fatal(err)
		}
		got := srv.Next()
		if len(got.Actions) != 0 || !strings.HasSuffix(got.Body, "\nAdd rule: run busmedic rules edit") {
			t.Errorf("actions %q, body %q; want no actions, and the command in the body", got.Actions, got.Body)
		}
		if set, err := appdb.CheckFile(path); err != nil || len(set.Rules()) != 0 {
			t.Errorf("rules without an answer: %v, %v", set, err)
		}
	})
}

// A client's notifications are shown at most maxClientNotices at a time;
// the others are dropped, not queued without end; once one is done,
// the next is shown.
func TestClientNoticesBounded(t *testing.T) {
	var wg sync.WaitGroup
	started := make(chan string, 2*maxClientNotices)
	release := make(chan struct{})
	notify := clientNotices(t.Context(), &wg, func(n control.Notice) {
		started <- n.Title
		<-release
	}, slog.New(slog.DiscardHandler))
	for i := range maxClientNotices + 2 {
		notify(control.Notice{Title: fmt.Sprint(i)})
	}
	for range maxClientNotices {
		<-started
	}
	close(release)
	wg.Wait()
	if len(started) != 0 {
		t.Errorf("%d more notifications shown, want those over %d dropped", len(started), maxClientNotices)
	}
	notify(control.Notice{Title: "after"})
	wg.Wait()
	if got := <-started; got != "after" {
		t.Errorf("shown %q, want the one that came once the others were done", got)
	}
}

// The rules editor that busmedic run or its tray starts edits the rules
// file that busmedic run reads: the one given with --config, made
// absolute, in place of any $BUSMEDIC_CONFIG.
func TestEditorEnv(t *testing.T) {
	env := []string{"HOME=/home/u", appdb.EnvConfig + "=/elsewhere/apps.toml"}
	if got := EditorEnv(env, ""); !slices.Equal(got, env) {
		t.Errorf("EditorEnv without a file = %q, want the environment as it is", got)
	}
	got := EditorEnv(env, "/etc/mine.toml")
	if want := []string{"HOME=/home/u", appdb.EnvConfig + "=/etc/mine.toml"}; !slices.Equal(got, want) {
		t.Errorf("EditorEnv = %q, want %q", got, want)
	}
	if !slices.Equal(env, []string{"HOME=/home/u", appdb.EnvConfig + "=/elsewhere/apps.toml"}) {
		t.Errorf("EditorEnv changed its argument: %q", env)
	}
	wd, _ := os.Getwd()
	if got := EditorEnv(nil, "mine.toml"); !slices.Equal(got, []string{appdb.EnvConfig + "=" + filepath.Join(wd, "mine.toml")}) {
		t.Errorf("EditorEnv with a relative file = %q, want it absolute", got)
	}
}
