//go:build race

package tray

// raceEnabled relaxes timing goals: the race detector slows the child's
// start several times.
const raceEnabled = true
