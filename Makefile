# Video Station — the two Quick start commands are `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEV_STATE ?= $(CURDIR)/var
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test deps venv lint typecheck-web screenshots bench clean

# System packages: Chromium for the browser tests, libsystemd for systemd-python,
# debootstrap/shellcheck for the provisioning tests, ffmpeg libs come with PyAV wheels.
APT_PACKAGES := chromium libsystemd-dev pkg-config debootstrap shellcheck fonts-dejavu-core \
	systemd python3-venv alsa-utils openssl
APT_PACKAGES += coturn nftables iproute2  # network test bed (tests/net/, branch net)

deps:
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
		if [ -n "$$missing" ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		fi; \
	elif command -v apt-get >/dev/null; then \
		missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
		if [ -n "$$missing" ]; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	fi

$(BIN)/videostation: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,systemd]'
	touch $@

venv: deps $(BIN)/videostation

# Runs the station on this machine: test-pattern camera, test tone, http://127.0.0.1:8080
run: venv
	@mkdir -p $(DEV_STATE)
	@test -s $(DEV_STATE)/.password-set || { \
		echo "videostation" | $(BIN)/videostation set-password --stdin --state-dir $(DEV_STATE) && \
		touch $(DEV_STATE)/.password-set && \
		echo "Development master password: videostation (change it: $(BIN)/videostation set-password --state-dir $(DEV_STATE))"; }
	@$(BIN)/videostation kiosk-url --state-dir $(DEV_STATE) --config /dev/null | sed 's/^/Kiosk screen: /'
	$(BIN)/videostation serve --state-dir $(DEV_STATE) --config /dev/null --camera test --microphone test

lint: venv
	$(BIN)/ruff check appliance tests
	$(BIN)/ruff format --check appliance tests
	$(BIN)/mypy

typecheck-web:
	cd web && npx --yes -p typescript@5 tsc -p tsconfig.json && npx --yes -p typescript@5 tsc -p tsconfig.sw.json

# The whole test suite (browser and provisioning tests included).
test: venv
	$(BIN)/ruff check appliance tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Refresh the README's screenshots from the browser tests.
screenshots: venv
	SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/test_browser.py

bench: venv
	$(BIN)/python -m pytest -q -m bench tests/bench -s

clean:
	rm -rf $(VENV) build dist *.egg-info var
