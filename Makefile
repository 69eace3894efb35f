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

.PHONY: run test test-fast test-vm deps deps-test venv venv-run venv-test lint typecheck-web screenshots bench bench-quick \
	clean clean-test-cache

# --- System packages (Debian), always with --no-install-recommends ----------------------
# What `make run` needs: a venv and the tools the service calls (openssl for
# `doctor --make-cert`, arecord for an ALSA microphone).
APT_RUN := python3-venv openssl alsa-utils
# What `make test` adds. Add yours on a line of its own (`APT_TEST += ...`) with a comment.
APT_TEST := chromium fonts-dejavu-core systemd python3-systemd shellcheck
APT_TEST += libatomic1                         # Playwright's bundled node driver
APT_TEST += debootstrap                        # provisioning tests: Debian roots
APT_TEST += qemu-user-static binfmt-support    # provisioning tests: arm64 roots under emulation
APT_TEST += git                                # provisioning tests: clone the checkout
APT_TEST += qemu-system-x86 qemu-system-arm qemu-utils e2fsprogs zstd  # VM tests (tests/vm): boot the appliance
APT_TEST += coturn nftables iproute2             # network test bed (tests/net)
APT_TEST += pipewire pipewire-bin wireplumber dbus-daemon espeak-ng sox  # echo cancelling on real PipeWire (tests/test_echo_cancel.py)
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
$(VENV)/.test-installed: pyproject.toml $(VENV)/.run-installed
	$(call step,Installing the test tools into $(VENV)…,$(BIN)/pip install -q -e '.[test]')
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

# The whole test suite, slow system tests included (CI runs this through .ci/run).
# Two pytest runs side by side: the arm64 tests (qemu-user, one core) and the rest.
EMULATED := emulated and not bench and not vm
NATIVE := not emulated and not bench and not vm and not realtime
# Every stage runs even when one before it failed (a flaky stage would otherwise hide the
# rest); the stages that failed are listed last and make fails.
FAILED := /tmp/videostation-test-failed-$$PPID
test: venv-test
	$(call step,Checking the code with ruff and mypy…,$(BIN)/ruff check appliance tests && $(BIN)/mypy)
	@rm -f $(FAILED)
	@echo "Running the real-time audio tests first, on a quiet machine (PipeWire's echo canceller, about 1 minute)…"
	@$(BIN)/python -m pytest -q -p no:cacheprovider -m "realtime and not emulated" || echo "real-time audio" >>$(FAILED)
	@echo "Running the benchmarks with tiny sizes, to keep them working (about 3 minutes)…"
	@BENCH_QUICK=1 $(BIN)/python -m pytest -q -m bench tests/bench || echo "bench-quick" >>$(FAILED)
	@echo "Running every test (about 45 minutes here cold, 27 once the caches under $(TEST_CACHE) are warm;"
	@echo "the arm64 tests and the arm64 VM image run under emulation beside the rest, at low priority:"
	@echo "their report comes last)…"
	@emulated_log=$$(mktemp /tmp/videostation-emulated.XXXXXX); native_log=$$(mktemp /tmp/videostation-native.XXXXXX); \
	{ nice -n 19 $(BIN)/python -m pytest -q -p no:cacheprovider -m "$(EMULATED)"; tests_rc=$$?; \
	  nice -n 19 $(BIN)/python -m tests.vm.vmimage arm64 || tests_rc=1; exit $$tests_rc; } >"$$emulated_log" 2>&1 & \
	emulated=$$!; trap 'kill $$emulated 2>/dev/null' INT TERM; \
	$(BIN)/python -m pytest -q --durations=15 -m "$(NATIVE)" | tee "$$native_log"; native_rc=$${PIPESTATUS[0]}; \
	wait $$emulated; emulated_rc=$$?; \
	echo "--- the arm64 tests (under emulation) ---"; cat "$$emulated_log"; \
	echo "--- every test: $$(tail -n 1 "$$native_log") | arm64: $$(grep -E ' (passed|failed|error)|^VM image' "$$emulated_log" | tail -n 2 | tr '\n' ' ')"; \
	rm -f "$$emulated_log" "$$native_log"; \
	[ $$native_rc = 0 ] && [ $$emulated_rc = 0 ] || echo "the parallel runs" >>$(FAILED)
	@echo "Booting the appliance in virtual machines under real systemd (x86_64 about 6 minutes,"
	@echo "plus 3 when its image is rebuilt; then arm64, about 10, its image built beside the tests above)…"
	@$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 -m vm tests/vm/test_vm_x86.py tests/vm/test_vm_arm64.py \
	  || echo "the VMs" >>$(FAILED)
	@if [ -e $(FAILED) ]; then echo "FAILED stages: $$(paste -sd, $(FAILED))"; rm -f $(FAILED); exit 1; fi

# Everything but the slow system tests (Debian roots, arm64 emulation, VMs): about 5 minutes.
test-fast: venv-test
	@echo "Running the tests but the slow ones (about 5 minutes)…"
	@$(BIN)/python -m pytest -q -m 'not slow and not bench'

# The appliance booted in QEMU VMs under real systemd (tests/vm), x86_64 then arm64:
# about 6 + 10 minutes, plus 3 + 6 to build the images when their inputs changed
# (`make test` boots both last, the arm64 image built beside the other tests).
test-vm: venv-test
	@echo "Booting the appliance in virtual machines (about 16 minutes, 25 when the images are rebuilt)…"
	@$(BIN)/python -m pytest -q --durations=15 -m vm tests/vm

# Refresh the README's screenshots from the browser tests.
screenshots: venv-test
	SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/test_browser.py tests/test_browser_i18n.py

bench: venv-test
	$(BIN)/python -m pytest -q -m bench tests/bench -s

# The benchmarks with tiny sizes, only to keep them working (make test runs this first).
bench-quick: venv-test
	@echo "Running the benchmarks with tiny sizes (about 3 minutes)…"
	@BENCH_QUICK=1 $(BIN)/python -m pytest -q -m bench tests/bench

clean:
	rm -rf $(VENV) build dist *.egg-info var .pytest_cache .mypy_cache .ruff_cache

# The slow tests' cache outside the clone (Debian roots, .debs, wheels): several GB.
clean-test-cache:
	rm -rf $(TEST_CACHE)
