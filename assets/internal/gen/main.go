// Command gen writes busmedic's tray icons into assets/icons: one SVG and
// one PNG per panel size for each icon. Run it with go generate in assets.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"busmedic/assets/internal/icondraw"
)

// sizes are the pixmap sizes panels ask for (16 to 64 px; 22 and 24 are
// the usual panel heights).
var sizes = []int{16, 22, 24, 32, 48, 64}

func main() {
	out := flag.String("out", "icons", "directory to write into")
	flag.Parse()
	if err := write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, ic := range icondraw.Icons() {
		if err := os.WriteFile(filepath.Join(dir, ic.Name+".svg"), ic.SVG(), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, ic.Name+"-symbolic.svg"), ic.SymbolicSVG(), 0o644); err != nil {
			return err
		}
		for _, s := range sizes {
			b, err := ic.PNG(s)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.png", ic.Name, s)), b, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}
