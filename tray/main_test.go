package tray

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
)

// childEnv makes the test binary stand in for a child process (as os/exec's
// own tests do): "tray" runs Run as "busmedic tray" would; "exit" exits
// with childCodeEnv; "wait" waits for SIGTERM or the supervisor's pipe.
const (
	childEnv     = "TRAY_TEST_CHILD"
	childCodeEnv = "TRAY_TEST_CODE"
	socketEnv    = "TRAY_TEST_SOCKET"
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "tray":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		err := Run(ctx, os.Getenv(socketEnv), log)
		log.Info("tray child exits", "err", err, "code", ExitCode(err))
		stop()
		os.Exit(ExitCode(err))
	case "exit":
		code, _ := strconv.Atoi(os.Getenv(childCodeEnv))
		os.Exit(code)
	case "supervisor":
		// A daemon stand-in for the parent-death test: it supervises a
		// "wait" child, which prints its pid on our stdout.
		Supervise(context.Background(), func() *exec.Cmd {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), childEnv+"=wait")
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			return cmd
		}, slog.New(slog.NewTextHandler(os.Stderr, nil)))
		os.Exit(0)
	case "wait":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		ctx, cancel := context.WithCancelCause(ctx)
		stopParent, err := watchParent(ctx, cancel)
		if err != nil {
			os.Exit(ExitCode(err))
		}
		// Ready: SIGTERM and the pipe are watched.
		fmt.Printf("pid %d\n", os.Getpid())
		<-ctx.Done()
		stopParent()
		io.WriteString(os.Stderr, "wait child: "+context.Cause(ctx).Error()+"\n")
		os.Exit(ExitCode(context.Cause(ctx)))
	}
}
