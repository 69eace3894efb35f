# Video Station — the two Quick start commands are `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEV_STATE ?= $(CURDIR)/var
HOST ?= 127.0.0.1
PORT ?= 8080
# Where the slow tests keep debootstrapped roots and download caches (outside the clone).
TEST_CACHE ?= /var/cache/videostation-tests
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1

.PHONY: run check test test-fast test-browser test-nightly test-vm deps deps-test venv venv-run venv-test lint typecheck-web screenshots bench bench-quick \
	clean clean-test-cache

# --- System packages (Debian), always with --no-install-recommends ----------------------
# What `make run` needs: a venv and the tools the service calls (openssl for
# `doctor --make-cert`, arecord for an ALSA microphone).
APT_RUN := python3-venv openssl alsa-utils
# What `make test` adds. Add yours on a line of its own (`APT_TEST += ...`) with a comment.
APT_TEST := chromium fonts-dejavu-core systemd python3-systemd shellcheck
APT_TEST += libatomic1                         # Playwright's bundled node driver
APT_TEST += firefox-esr                        # a Firefox guest through Marionette (tests/test_browser_firefox.py)
APT_TEST += debootstrap                        # provisioning tests: Debian roots
APT_TEST += qemu-user-static binfmt-support    # provisioning tests: arm64 roots under emulation
APT_TEST += git                                # provisioning tests: clone the checkout
APT_TEST += qemu-system-x86 qemu-system-arm qemu-utils e2fsprogs zstd  # VM tests (tests/vm): boot the appliance
APT_TEST += coturn nftables iproute2             # network test bed (tests/net); coturn: tests/security/test_turn_relay.py
APT_TEST += pipewire pipewire-bin wireplumber dbus-daemon espeak-ng sox  # echo cancelling on real PipeWire (tests/test_echo_cancel.py)
APT_TEST += faketime                           # a wall-clock jump against a real process (tests/reliability/test_faketime.py)
APT_TEST += prometheus                         # promtool and a real Prometheus against the rules, the dashboard and two stations (tests/test_monitoring.py)
APT_TEST += wireguard-go wireguard-tools nginx-light libnginx-mod-stream  # the relay role run in namespaces (tests/provisioning/test_relay.py)
NODE_PACKAGES := nodejs npm                    # the JS type check (only if npx is missing)

# One line per step; a step's output is kept in a log and shown only if it fails,
# then the step's error is the last thing printed.
define step
	@printf '%s\n' "$(1)"; log=$$(mktemp /tmp/videostation-make.XXXXXX); \
	if ! ( $(2) ) >"$$log" 2>&1; then \
		echo "make: failed: $(1) Its output (full log: $$log):" >&2; \
		tail -n 40 "$$log" >&2; exit 1; \
	fi; rm -f "$$log"
endef

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=600 \
	-o Dpkg::Use-Pty=0
# Prints the packages of $(1) not installed yet.
missing = $$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || printf '%s ' $$p; done)

deps:
	@command -v apt-get >/dev/null || { echo "make: not a Debian system: install $(APT_RUN) yourself" >&2; exit 0; }; \
	need="$(call missing,$(APT_RUN))"; [ -z "$$need" ] || { \
	$(MAKE) --no-print-directory apt-install PKGS="$$need"; }

deps-test: deps
	@command -v apt-get >/dev/null || exit 0; \
	node="$$(command -v npx >/dev/null || echo '$(NODE_PACKAGES)')"; \
	need="$(call missing,$(APT_TEST) $$node)"; [ -z "$$need" ] || { \
	$(MAKE) --no-print-directory apt-install PKGS="$$need"; }

.PHONY: apt-install
apt-install:
	$(call step,Installing system packages: $(PKGS)…,$(APT_GET) update && $(APT_GET) install -y --no-install-recommends $(PKGS))

# The venv for running: the runtime dependencies only.
$(VENV)/.run-installed: pyproject.toml
	$(call step,Creating the virtualenv in $(VENV)…,test -x $(BIN)/python || $(PY) -m venv $(VENV))
	$(call step,Installing the station into $(VENV)…,$(BIN)/pip install -q --upgrade pip && $(BIN)/pip install -q -e .)
	@touch $@

# The venv for testing adds the test toolchain, and Debian's python3-systemd seen
# through the venv (no compiler needed: it is not built from source).
$(VENV)/.test-installed: pyproject.toml tests/constraints.txt $(VENV)/.run-installed
	$(call step,Installing the test tools into $(VENV)…,$(BIN)/pip install -q -c tests/constraints.txt -e '.[test]')
	@site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	if [ -d /usr/lib/python3/dist-packages/systemd ] && [ ! -e "$$site/systemd" ]; then \
		ln -s /usr/lib/python3/dist-packages/systemd "$$site/systemd"; fi
	@touch $@

# `make venv`: the development venv (runtime and test tools); `make run` needs only venv-run.
venv-run: deps $(VENV)/.run-installed
venv-test: deps-test venv-run $(VENV)/.test-installed
venv: venv-test

# Runs the station on this machine: test-pattern camera, test tone, http://127.0.0.1:8080.
# A headless server reachable from the LAN: make run HOST=0.0.0.0 PORT=8090
run: venv-run
	@mkdir -p $(DEV_STATE)
	@test -s $(DEV_STATE)/.password-set || { \
		echo "videostation" | $(BIN)/videostation set-password --stdin --state-dir $(DEV_STATE) >/dev/null && \
		touch $(DEV_STATE)/.password-set && \
		echo "Development master password: videostation (change it: $(BIN)/videostation set-password --state-dir $(DEV_STATE))"; }
	@$(BIN)/videostation kiosk-url --state-dir $(DEV_STATE) --config /dev/null --host $(HOST) --port $(PORT) | sed 's/^/Kiosk screen: /'
	@echo "Serving on http://$(HOST):$(PORT) (Ctrl-C stops it)"
	@exec $(BIN)/videostation serve --state-dir $(DEV_STATE) --config /dev/null --host $(HOST) --port $(PORT) --camera test --microphone test

lint: venv-test
	$(call step,ruff…,$(BIN)/ruff check appliance tests && $(BIN)/ruff format --check appliance tests)
	$(call step,mypy…,$(BIN)/mypy)

typecheck-web: deps-test
	cd web && npx --yes -p typescript@5 tsc -p tsconfig.json && npx --yes -p typescript@5 tsc -p tsconfig.sw.json

# --- Test tiers, cheapest first (docs/testing.md); each prints how long it took ----------
# Two pytest-xdist workers, each taking a whole group of tests (tests/conftest.py), the
# longest first by the durations recorded in tests/durations.json.
XDIST := -n 2 --dist loadgroup --no-loadscope-reorder
IN_PROCESS := not slow and not bench and not browser and not vm and not realtime
# Prints how long the recipe took when it ends, whether it passed or failed.
timed = started=$$(date +%s); trap 'echo "make $@: $$(( $$(date +%s) - started )) s"' EXIT;

# On save: ruff (fix, format) on one file, incremental mypy, its module's tests and doctests.
#   make check F=appliance/call.py
check: venv-test
	@test -n "$(F)" || { echo "make check F=path/to/file.py" >&2; exit 2; }
	@$(timed) set -e; \
	$(BIN)/ruff check --fix --quiet $(F); $(BIN)/ruff format --quiet $(F); \
	$(BIN)/dmypy run --timeout 3600 -- --config-file pyproject.toml appliance | grep -v '^Success' || true; \
	[ "$${PIPESTATUS[0]}" = 0 ] || exit 1; \
	tests=$$($(BIN)/python -m tests.check_targets $(F)); \
	if [ -z "$$tests" ]; then echo "no Python tests of its own: $(F)"; exit 0; fi; \
	$(BIN)/python -m pytest -q -p no:cacheprovider --no-header $$tests

# On commit: lint, mypy, then every in-process test (no Chromium, no roots, no VMs) in two
# workers; the TypeScript check of web/ is one of those tests.
test-fast: venv-test
	@$(timed) echo "Linting, then the in-process tests in two workers (about 4 minutes)…"; \
	$(BIN)/ruff check appliance tests && $(BIN)/ruff format --check appliance tests && $(BIN)/mypy && \
	$(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) -m '$(IN_PROCESS)'

# The Playwright tests (Debian's Chromium, fake camera) in two workers.
test-browser: venv-test
	@$(timed) echo "The browser tests in two workers (15–19 minutes)…"; \
	$(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) -m 'browser and not slow'

# Every tier, the slow system tests included (CI runs this through .ci/run): see
# tests/tiers.py for the stages; it prints what each ran, passed and took.
test: venv-test
	@$(timed) $(BIN)/python -m tests.tiers

# The arm64 role's second (idempotence) apply under emulation, which make test leaves out
# (about 6 minutes), with the rest of the arm64 chroot tests.
test-nightly: venv-test
	@$(timed) echo "The arm64 chroot tests with the role applied a second time (about 6 minutes)…"; \
	VIDEOSTATION_NIGHTLY=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m emulated tests/provisioning

# The appliance booted in QEMU VMs under real systemd (tests/vm), x86_64 then arm64 (the
# images are built first when their inputs changed).
test-vm: venv-test
	@$(timed) $(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 -m vm tests/vm

# Refresh the README's screenshots from the browser tests.
screenshots: venv-test
	SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/test_browser.py tests/test_browser_i18n.py

bench: venv-test
	$(BIN)/python -m pytest -q -m bench tests/bench -s

# The benchmarks with tiny sizes, only to keep them working (make test runs this first).
bench-quick: venv-test
	@echo "Running the benchmarks with tiny sizes (about 2 minutes)…"
	@BENCH_QUICK=1 $(BIN)/python -m pytest -q -m bench tests/bench

clean:
	rm -rf $(VENV) build dist *.egg-info var .pytest_cache .mypy_cache .ruff_cache

# The slow tests' cache outside the clone (Debian roots, .debs, wheels): several GB.
clean-test-cache:
	rm -rf $(TEST_CACHE)
