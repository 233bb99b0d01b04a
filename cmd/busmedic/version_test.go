package main

import (
	"bytes"
	"context"
	"io"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionString(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}
	for _, tc := range []struct {
		name   string
		linked string
		info   *debug.BuildInfo
		want   string
	}{
		{"make", "v0.3.0-2-gabc", stamped, "busmedic v0.3.0-2-gabc (commit 0123456789ab, modified, go1.26.8)"},
		{"go build", "", stamped, "busmedic devel (commit 0123456789ab, modified, go1.26.8)"},
		{"go install at a tag", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.4.0"}}, "busmedic v0.4.0 (go1.26.8)"},
		{"no build info", "", nil, "busmedic devel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionString(tc.linked, tc.info); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestVersionCommand: the variable the Makefile sets with -X is what
// "busmedic version" prints.
func TestVersionCommand(t *testing.T) {
	defer func(v string) { version = v }(version)
	version = "v9.9.9-test"
	var stdout bytes.Buffer
	if code := runVersion(context.Background(), nil, &stdout, io.Discard); code != exitOK || !strings.HasPrefix(stdout.String(), "busmedic v9.9.9-test (") {
		t.Errorf("busmedic version: exit %d, %q", code, &stdout)
	}
	if code := runVersion(context.Background(), []string{"extra"}, io.Discard, io.Discard); code != exitUsage {
		t.Errorf("busmedic version extra: exit %d, want %d", code, exitUsage)
	}
}

// TestHelpEveryCommand: "busmedic help COMMAND" describes every command,
// with a usage line and exit 0, without starting it.
func TestHelpEveryCommand(t *testing.T) {
	for _, c := range commands() {
		if c.name == "help" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := c.run(context.Background(), []string{"-h"}, &stdout, &stderr)
			if code != exitOK || !strings.Contains(stdout.String(), "Usage: busmedic "+c.name) {
				t.Errorf("busmedic %s -h: exit %d\nstdout: %s\nstderr: %s", c.name, code, &stdout, &stderr)
			}
		})
	}
	// Through the help command too, for the commands of the table.
	for _, c := range commands() {
		if c.name == "help" {
			continue
		}
		var stdout bytes.Buffer
		if code := runHelp(context.Background(), []string{c.name}, &stdout, io.Discard); code != exitOK || stdout.Len() == 0 {
			t.Errorf("busmedic help %s: exit %d, %q", c.name, code, &stdout)
		}
	}
	if code := runHelp(context.Background(), []string{"no-such"}, io.Discard, io.Discard); code != exitUsage {
		t.Errorf("help no-such: exit %d, want %d", code, exitUsage)
	}
}
