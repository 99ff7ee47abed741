# Orchard quick start:
#   make run    install missing Debian packages, build (Release), start orchardd on its defaults
#   make test   the same setup, then the whole suite through ctest
#   make bench  end-to-end benchmarks against nginx (not part of make test)

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
TEST_DEPS := prometheus chromium

SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: deps test-deps configure build run test bench clean

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

clean:
	rm -rf $(BUILD_DIR)
