package appdb_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"busmedic/appdb"
	"busmedic/watcher"
)

func TestWriteStarter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busmedic", "apps.toml")
	if err := appdb.WriteStarter(path); err != nil {
		t.Fatal(err)
	}
	set, err := appdb.CheckFile(path)
	if err != nil {
		t.Fatalf("the starter file does not validate: %v", err)
	}
	if len(set.Rules()) != 0 || len(set.Warnings()) != 0 {
		t.Errorf("the starter file has rules %v or warnings %v: it must relaunch nothing until the user says so", set.Rules(), set.Warnings())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}

	// A second call keeps what is there.
	if err := os.WriteFile(path, []byte("version = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := appdb.WriteStarter(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("WriteStarter over a file: %v, want fs.ErrExist", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "version = 1\n" {
		t.Errorf("WriteStarter changed an existing file: %q", data)
	}
}

// TestStarterExampleValidates: the commented example, uncommented, is a
// valid rule, and a rule added to the starter keeps its comments.
func TestStarterExampleValidates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "apps.toml")
	if err := appdb.WriteStarter(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	var uncommented []string
	inExample := false
	for line := range strings.Lines(string(data)) {
		if strings.HasPrefix(line, "# [[app]]") {
			inExample = true
		}
		if inExample {
			line = strings.TrimPrefix(line, "# ")
		}
		uncommented = append(uncommented, line)
	}
	set, err := appdb.Parse("example", []byte(strings.Join(uncommented, "")))
	if err != nil {
		t.Fatalf("the starter's example does not validate: %v", err)
	}
	if _, ok := set.Lookup("dunst"); !ok {
		t.Error("the starter's example has no dunst rule")
	}

	f, err := appdb.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := appdb.FromPeer(watcher.Peer{Exe: "/usr/bin/dunst", Argv: []string{"dunst"}, Names: []string{"org.freedesktop.Notifications"}})
	if err := f.AddOrReplace(r); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(after), string(data)) {
		t.Errorf("adding a rule lost the starter's comments:\n%s", after)
	}
}
