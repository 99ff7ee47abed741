# Orchard quick start:
#   make run    install missing Debian packages, build (Release), start orchardd on its defaults
#   make test   the same setup, then the whole suite through ctest
#   make bench  end-to-end benchmarks against nginx (not part of make test)
#   make install  orchardd, orchardctl, man pages, the unit, /etc/orchard/orchard.toml
#                 (DESTDIR, PREFIX=/usr/local; an existing orchard.toml is kept)
#   make deb    build/deb/orchard_<version>_<arch>.deb (debian/, dpkg-buildpackage)

BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

# Debian packages the build, the tests and the benchmarks need.
DEPS := build-essential cmake pkg-config git \
        libuv1-dev node-llhttp libssl-dev librocksdb-dev libxxhash-dev libzstd-dev \
        libgtest-dev libgmock-dev libbenchmark-dev libtomlplusplus-dev nlohmann-json3-dev \
        libarchive-dev libarchive-tools libxml2-dev zlib1g-dev libplist-dev libcurl4-openssl-dev libcli11-dev \
        openssl python3 python3-cryptography curl libjs-chart.js
# Packages only the tests need: promtool (in Debian's prometheus package,
# installed without its recommends; in a container nothing starts the
# prometheus service) checks /metrics in tests/blackbox/test_metrics.py.
# chromium loads the dashboard headless in tests/blackbox/test_dashboard.py.
# The packaging tools build and check the .deb (make deb, test_packaging.py).
PKG_DEPS := debhelper dpkg-dev fakeroot lintian
TEST_DEPS := prometheus chromium $(PKG_DEPS)

# make install: where things go. The unit under $(PREFIX)/lib/systemd/system
# (systemd reads /usr/local/lib/systemd/system too); the .deb passes
# UNITDIR=/lib/systemd/system. The config is always /etc/orchard/orchard.toml
# (the unit's --config), under DESTDIR.
PREFIX ?= /usr/local
DESTDIR ?=
UNITDIR ?= $(PREFIX)/lib/systemd/system
CONFDIR ?= /etc/orchard
# make deb: where the .deb, .buildinfo and .changes go.
DEB_OUT ?= $(abspath $(BUILD_DIR))/deb

SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: deps test-deps configure build run test bench install deb clean

deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(DEPS)"

test-deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(TEST_DEPS)"

.PHONY: install-packages
install-packages:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

run: build
	./$(BUILD_DIR)/orchardd

test: build test-deps
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 900

bench: build
	./bench/e2e/run.sh

# Builds (configures first if need be) only the two programs, so it also
# runs inside debian/rules; never apt-get (that is `deps`).
install:
	@[ -f $(BUILD_DIR)/CMakeCache.txt ] || cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j$(JOBS) --target orchardd orchardctl
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD_DIR) --prefix $(PREFIX)
	install -d "$(DESTDIR)$(UNITDIR)"
	sed -e 's|/usr/bin/orchardd|$(PREFIX)/bin/orchardd|' \
	    -e 's|file:///usr/share/doc/orchard/|file://$(PREFIX)/share/doc/orchard/|' \
	    systemd/orchard.service > "$(DESTDIR)$(UNITDIR)/orchard.service.tmp"
	chmod 0644 "$(DESTDIR)$(UNITDIR)/orchard.service.tmp"
	mv "$(DESTDIR)$(UNITDIR)/orchard.service.tmp" "$(DESTDIR)$(UNITDIR)/orchard.service"
	@# The production config, from the parameter table; an admin's file is never replaced.
	install -d -m 0755 "$(DESTDIR)$(CONFDIR)"
	$(BUILD_DIR)/orchardd --print-defaults --production > "$(DESTDIR)$(CONFDIR)/orchard.toml.tmp"
	chmod 0644 "$(DESTDIR)$(CONFDIR)/orchard.toml.tmp"
	$(BUILD_DIR)/orchardd --check-config "$(DESTDIR)$(CONFDIR)/orchard.toml.tmp" > /dev/null
	@conf="$(DESTDIR)$(CONFDIR)/orchard.toml"; \
	if [ ! -e "$$conf" ]; then \
	  mv "$$conf.tmp" "$$conf"; echo "installed $$conf"; \
	elif cmp -s "$$conf.tmp" "$$conf"; then \
	  rm -f "$$conf.tmp"; echo "kept $$conf (the same as this version's)"; \
	else \
	  mv "$$conf.tmp" "$$conf.new"; \
	  echo "kept $$conf (it differs from this version's; that one is $$conf.new: compare and merge by hand)"; \
	fi

# What a dpkg-buildpackage run leaves in debian/ (.gitignore lists it too).
DEB_WORK := debian/orchard debian/.debhelper debian/files debian/*.substvars debian/*.debhelper \
            debian/*.debhelper.log debian/debhelper-build-stamp

# dpkg-buildpackage in this tree without its pre-clean, so build-deb/ is
# reused: only the last run's package tree and debhelper's stamps and logs
# go (dh_clean would also delete *.orig, *~ ... anywhere in the tree).
deb: deps
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(PKG_DEPS)"
	mkdir -p $(DEB_OUT)
	rm -rf $(DEB_WORK)
	DEB_OUTDIR=$(DEB_OUT) dpkg-buildpackage -b -us -uc -nc -J$(JOBS) \
	  --buildinfo-file=$(DEB_OUT)/orchard_$$(dpkg-parsechangelog -S Version)_$$(dpkg-architecture -qDEB_HOST_ARCH).buildinfo \
	  --changes-file=$(DEB_OUT)/orchard_$$(dpkg-parsechangelog -S Version)_$$(dpkg-architecture -qDEB_HOST_ARCH).changes \
	  --buildinfo-option=-u$(DEB_OUT) --changes-option=-u$(DEB_OUT)
	@echo "built $(DEB_OUT)/orchard_$$(dpkg-parsechangelog -S Version)_$$(dpkg-architecture -qDEB_HOST_ARCH).deb"

clean:
	rm -rf $(BUILD_DIR) build-deb $(DEB_WORK)
