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
	// --version and -V are the same as the version command.
	for _, args := range [][]string{{"version"}, {"--version"}, {"-V"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != exitOK ||
			!strings.HasPrefix(stdout.String(), "busmedic v9.9.9-test (") || stderr.Len() != 0 {
			t.Errorf("busmedic %s: exit %d, %q, stderr %q", args[0], code, &stdout, &stderr)
		}
	}
	if code := run(context.Background(), []string{"version", "extra"}, io.Discard, io.Discard); code != exitUsage {
		t.Errorf("busmedic version extra: exit %d, want %d", code, exitUsage)
	}
}
