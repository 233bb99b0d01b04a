package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"time"

	"busmedic/appdb"
	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/relaunch/control"
)

// The completion scripts: each hands the words of the command line to
// "busmedic __complete" (package cli) and offers what it prints, so that
// the commands, flags and ids they complete come from the command table
// and the rules.
var (
	//go:embed completion/busmedic.bash
	bashCompletion string
	//go:embed completion/_busmedic
	zshCompletion string
	//go:embed completion/busmedic.fish
	fishCompletion string
)

// completionTimeout bounds the question to the daemon for casualty ids: a
// shell must not hang on a daemon that does not answer.
const completionTimeout = 500 * time.Millisecond

// runCompletion is "busmedic completion SHELL".
func runCompletion(ctx context.Context, in *cli.Call) int {
	scripts := map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}
	s, ok := scripts[in.Args[0]]
	if !ok {
		return in.UsageError("no shell %q (want bash, zsh or fish)", in.Args[0])
	}
	fmt.Fprint(in.Stdout, s)
	return exitOK
}

// appIDs are the ids relaunch takes: the rules' ids, read from the rules
// files (the daemon need not run), then the casualties' ids, which only
// the daemon knows. The top level's --config and the command's --socket
// on the command line count.
func appIDs(ctx context.Context, fs *flag.FlagSet) []cli.Candidate {
	var cands []cli.Candidate
	config := ""
	if f := fs.Lookup("config"); f != nil {
		config = f.Value.String()
	}
	if set, err := appdb.Load(appdb.DefaultPaths(config)); err == nil {
		for _, r := range set.Rules() {
			if r.Enabled {
				cands = append(cands, cli.Candidate{Word: r.ID, About: "rule: " + r.DisplayName()})
			}
		}
	}
	socket := control.DefaultPath()
	if f := fs.Lookup("socket"); f != nil {
		socket = f.Value.String()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	c, err := control.Dial(ctx, socket)
	if err != nil {
		return cands
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return cands
	}
	for _, cas := range st.Casualties {
		cands = append(cands, cli.Candidate{Word: cas.ID, About: "fell off the " + cas.Bus + " bus: " + cas.Peer.String()})
	}
	return cands
}
