package main

import (
	"context"
	"fmt"
	"runtime/debug"

	"busmedic/cmd/busmedic/internal/cli"
)

// version is set by the Makefile (-ldflags "-X main.version=...") from git
// describe; a plain "go build" leaves it empty and the build info speaks.
var version string

// runVersion is "busmedic version": which busmedic this is, for bug reports.
func runVersion(ctx context.Context, in *cli.Call) int {
	info, _ := debug.ReadBuildInfo()
	fmt.Fprintln(in.Stdout, versionString(version, info))
	return exitOK
}

// versionString is "busmedic VERSION (commit REV[, modified], GO)": the
// version from the linker if set, else the module's (a tagged "go install"),
// else "devel"; the commit from the build's VCS stamp.
func versionString(linked string, info *debug.BuildInfo) string {
	v := linked
	if v == "" && info != nil && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	if v == "" {
		v = "devel"
	}
	if info == nil {
		return "busmedic " + v
	}
	rev, modified := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	detail := info.GoVersion
	if rev != "" {
		c := "commit " + rev[:min(12, len(rev))]
		if modified {
			c += ", modified"
		}
		detail = c + ", " + detail
	}
	return fmt.Sprintf("busmedic %s (%s)", v, detail)
}
