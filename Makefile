# busmedic: build, install, uninstall and package.
#
#   make                    bin/busmedic (no cgo) and bin/busmedic-rules (cgo, Fyne)
#   make install            into PREFIX (default ~/.local), listing every file
#                           it installs in PREFIX/share/busmedic/installed.txt
#   make install-daemon     only the daemon, its icons, unit, autostart entry
#                           (system installs) and docs: no cgo, no GL headers
#   make install-editor     only the rules editor and its menu entry
#   make install DESTDIR=/tmp/stage PREFIX=/usr
#                           a staging tree for a package (no list is kept)
#   make uninstall          removes exactly what that list names
#   make deb                dist/busmedic_*.deb and dist/busmedic-rules_*.deb
#   make test               the README's test command
#
# The install rules live in scripts/install-files, which keeps the list;
# the package definitions in packaging/.

PREFIX ?= $(HOME)/.local
DESTDIR ?=
# Where the binaries are built; the install test builds into a temporary
# directory so that it does not touch the working tree.
OUT ?= bin
GO ?= go
# Extra linker flags; "make deb" strips the binaries (-s -w), as Debian ships them.
LDFLAGS ?=
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
# The packages' version: FyneApp.toml's Version, then "+git" and the
# commit (Debian versions start with a digit; the commit sorts after the
# release it follows).
DEB_VERSION ?= $(shell sed -n 's/^ *Version = "\(.*\)"/\1/p' FyneApp.toml)+git$(shell echo '$(VERSION)' | tr -c 'A-Za-z0-9.\n' '.')
DIST ?= dist
NFPM ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

.PHONY: all build build-daemon build-editor install install-daemon install-editor uninstall deb test clean

all: build

build: build-daemon build-editor

# Phony on purpose: go build knows better than make what is stale.
build-daemon:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS) -X main.version=$(VERSION)' -o $(OUT)/busmedic ./cmd/busmedic

build-editor:
	CGO_ENABLED=1 $(GO) build -ldflags '$(LDFLAGS)' -o $(OUT)/busmedic-rules ./cmd/busmedic-rules

install: build
	DESTDIR='$(DESTDIR)' scripts/install-files install '$(PREFIX)' '$(OUT)'

install-daemon: build-daemon
	DESTDIR='$(DESTDIR)' scripts/install-files install-daemon '$(PREFIX)' '$(OUT)'

install-editor: build-editor
	DESTDIR='$(DESTDIR)' scripts/install-files install-editor '$(PREFIX)' '$(OUT)'

uninstall:
	scripts/install-files uninstall '$(PREFIX)'

# Each package from its own staging tree, as "make install-daemon" and
# "make install-editor" lay it out under /usr (packaging/*.yaml say what
# goes where), with the Debian copyright and changelog beside the docs.
deb:
	rm -rf '$(DIST)/stage'
	$(MAKE) install-daemon PREFIX=/usr OUT='$(DIST)/stage/bin' LDFLAGS='-s -w' \
		DESTDIR='$(abspath $(DIST))/stage/busmedic'
	$(MAKE) install-editor PREFIX=/usr OUT='$(DIST)/stage/bin' LDFLAGS='-s -w' \
		DESTDIR='$(abspath $(DIST))/stage/busmedic-rules'
	for p in busmedic busmedic-rules; do \
		d='$(DIST)'/stage/$$p/usr/share/doc/$$p; \
		mkdir -p "$$d" && install -m 644 packaging/copyright "$$d/copyright" && \
		sed 's/@VERSION@/$(DEB_VERSION)/; s/@PACKAGE@/'$$p'/' packaging/changelog | gzip -9n >"$$d/changelog.gz" || exit 1; \
		if [ -f packaging/$$p.lintian-overrides ]; then \
			install -D -m 644 packaging/$$p.lintian-overrides '$(DIST)'/stage/$$p/usr/share/lintian/overrides/$$p || exit 1; \
		fi; \
	done
	cd '$(DIST)/stage' && for p in busmedic busmedic-rules; do \
		DEB_VERSION='$(DEB_VERSION)' $(NFPM) package --config '$(CURDIR)'/packaging/$$p.yaml \
			--packager deb --target '$(abspath $(DIST))/' || exit 1; \
	done

test:
	scripts/ensure-deps test && $(GO) test -race ./...

clean:
	rm -f $(OUT)/busmedic $(OUT)/busmedic-rules
	-rmdir $(OUT) 2>/dev/null
	rm -rf '$(DIST)'
