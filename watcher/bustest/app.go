package bustest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var build struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// TestApp returns the path of the testapp fixture program, built once per
// test binary. See busmedic/watcher/bustest/testapp for what it does.
func TestApp(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "bustest-app")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "testapp")
		cmd := exec.Command("go", "build", "-o", build.path, "busmedic/watcher/bustest/testapp")
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("bustest: build testapp: %v\n%s", build.err, build.out)
	}
	return build.path
}

// App is a running testapp.
type App struct {
	Cmd    *exec.Cmd
	exited chan struct{}
	stderr *bytes.Buffer
}

// StartApp runs testapp on this bus with args (such as "-name", "org.example.A",
// "-mode", "exit") and waits until it says it is ready. The process is
// killed when the test ends.
func (b *Bus) StartApp(args ...string) *App {
	b.t.Helper()
	cmd := exec.Command(TestApp(b.t), args...)
	cmd.Env = b.Env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.t.Fatalf("bustest: %v", err)
	}
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("bustest: start testapp: %v", err)
	}
	a := &App{Cmd: cmd, exited: make(chan struct{}), stderr: &stderr}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		first := true
		for sc.Scan() {
			if first && sc.Text() == "ready" {
				close(ready)
				first = false
			}
		}
		cmd.Wait()
		close(a.exited)
	}()
	b.t.Cleanup(func() {
		cmd.Process.Kill()
		<-a.exited
	})
	select {
	case <-ready:
	case <-a.exited:
		b.t.Fatalf("bustest: testapp %v exited at start: %s", args, stderr.String())
	case <-time.After(waitLimit):
		b.t.Fatalf("bustest: testapp %v not ready within %s: %s", args, waitLimit, stderr.String())
	}
	return a
}

// PID returns the app's process id.
func (a *App) PID() int { return a.Cmd.Process.Pid }

// Exited returns a channel closed when the app has exited.
func (a *App) Exited() <-chan struct{} { return a.exited }
