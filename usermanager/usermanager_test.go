package usermanager

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"busmedic/watcher/bustest"
)

func TestSocket(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if got := Socket(env(map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"})); got != "/run/user/1000/systemd/private" {
		t.Errorf("Socket = %q", got)
	}
	// A relative runtime directory is not one (the XDG spec says to
	// ignore it), and none means no manager to reach.
	for _, rt := range []string{"", "run/user/1000"} {
		if got := Socket(env(map[string]string{"XDG_RUNTIME_DIR": rt})); got != "" {
			t.Errorf("Socket with XDG_RUNTIME_DIR=%q = %q, want none", rt, got)
		}
	}
}

func TestRunning(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "private")
	if Running(sock) {
		t.Fatal("Running with no socket file")
	}
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if Running(sock) {
		t.Fatal("Running with a plain file where the socket should be")
	}
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !Running(sock) {
		t.Fatal("not Running with a socket listening")
	}
}

// The manager itself is tested in test/systemdtest, in a real systemd
// session; here only the error a user sees without one.
func TestDialWithoutManager(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "systemd", "private")
	_, err := Dial(context.Background(), sock)
	if err == nil || !strings.Contains(err.Error(), "no systemd user manager") {
		t.Fatalf("Dial without a manager: %v", err)
	}
	if _, err := Dial(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "XDG_RUNTIME_DIR") {
		t.Fatalf("Dial without a socket: %v", err)
	}
}

// A manager that takes the connection but then answers nothing does not
// hold Dial past its context.
func TestDialMuteManager(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "systemd", "private")
	begun := bustest.Mute(t, sock)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, sock)
		done <- err
	}()
	// Both of go-systemd's connections are made: it waits for the
	// answer to its call now.
	for range 2 {
		select {
		case <-begun:
		case err := <-done:
			t.Fatalf("Dial returned before the handshakes: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no handshake with the stand-in manager")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), context.Canceled.Error()) {
			t.Errorf("Dial of a mute manager after its context ended: %v, want the context's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Dial of a mute manager did not return when its context ended")
	}
}
