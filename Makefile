# busmedic: build, install and uninstall.
#
#   make                    bin/busmedic (no cgo) and bin/busmedic-rules (cgo, Fyne)
#   make install            into PREFIX (default ~/.local), listing every file
#                           it installs in PREFIX/share/busmedic/installed.txt
#   make uninstall          removes exactly what that list names
#   make test               the README's test command
#
# The install rules live in scripts/install-files, which keeps the list.

PREFIX ?= $(HOME)/.local
# Where the binaries are built; the install test builds into a temporary
# directory so that it does not touch the working tree.
OUT ?= bin
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

.PHONY: all build install uninstall test clean

all: build

# Phony on purpose: go build knows better than make what is stale.
build:
	CGO_ENABLED=0 $(GO) build -ldflags '-X main.version=$(VERSION)' -o $(OUT)/busmedic ./cmd/busmedic
	CGO_ENABLED=1 $(GO) build -o $(OUT)/busmedic-rules ./cmd/busmedic-rules

install: build
	scripts/install-files install '$(PREFIX)' '$(OUT)'

uninstall:
	scripts/install-files uninstall '$(PREFIX)'

test:
	scripts/ensure-deps test && $(GO) test -race ./...

clean:
	rm -f $(OUT)/busmedic $(OUT)/busmedic-rules
	-rmdir $(OUT) 2>/dev/null
