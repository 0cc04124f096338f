# pollbox — polling-station appliance. `make` prints this help.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
APT_PACKAGES := libzbar0 libdmtx0b chromium shellcheck postgresql systemd openssl fonts-dejavu-core \
	swtpm swtpm-tools tpm2-tools libtss2-dev pkg-config xxd rauc squashfs-tools device-tree-compiler
DEMO := var/demo
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run run-units verifier demo-reset test quick lint bench docs screenshots fonts image image-test image-pigen image-deps clean system-deps firmware-deps

help:
	@echo "pollbox make targets:"
	@echo "  make run     create a demo station (simulated hardware) and run it with the chair's screen"
	@echo "               on http://127.0.0.1:8080 and a local CEC receiver on http://127.0.0.1:8090"
	@echo "  make run-units  a demo station with two desks and a mobile unit (three units on loopback);"
	@echo "               'python -m device.sync.demo build/demo-units link A B up|down' cuts and restores a link"
	@echo "  make verifier  build the observers' verifier page (receiver/static/verify.html) from its npm lock file"
	@echo "  make demo-reset  delete the demo station, so the next 'make run' starts from an empty journal"
	@echo "  make test    the full test suite (what CI runs; its screenshots go to build/screenshots/)"
	@echo "  make quick   the quick test suite (no slow tests)"
	@echo "  make lint    ruff, mypy (strict on device/core and protocol) and pyright on the firmware"
	@echo "  make bench   benchmarks; writes bench/results.json and the scaling plot bench/scaling.svg"
	@echo "  make docs    regenerate docs/audit-events.md and the wiring drawings docs/wiring*.svg"
	@echo "  make screenshots  retake docs/screenshots/ with the real-browser tests"
	@echo "  make fonts   rebuild the chair's screen's font (web_ui/static/fonts/) from DejaVu Sans"
	@echo "  make image   build the appliance OS image from Debian packages (ARCH=amd64 or arm64)"
	@echo "               into build/image/pollbox-ARCH.img with its manifest; rebuilt only when its recipe changes"
	@echo "               SUITE=trixie (Debian 13, the default; the Pi 5 needs it) or bookworm (Debian 12)"
	@echo "               ELECTION_ID=... CEC_PUBLIC_KEY=... bake the election's trust anchor into it"
	@echo "  make image-test  build a test image (test CEC key) and boot it in QEMU (KVM where it works, else"
	@echo "               software emulation): first boot, bad sticks, power cuts, GPIO through the kernel"
	@echo "  make image-pigen  the older Raspberry Pi OS route with pi-gen (arm64 host, fetches pi-gen)"
	@echo "  make clean   remove the virtualenv, the demo station and build files"

# Debian packages: installed when missing (needs root; otherwise says what to install).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else echo "missing Debian packages:$$missing — run: sudo apt-get install$$missing"; exit 1; fi; \
	fi

# What building and booting the image needs (Debian packages; root installs them, others are told which).
IMAGE_PACKAGES := mmdebstrap e2fsprogs dosfstools mtools fdisk git qemu-system-x86 qemu-system-arm qemu-utils ovmf \
	qemu-user-static rauc device-tree-compiler
image-deps:
	@missing=""; for p in $(IMAGE_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages for the image:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else echo "missing Debian packages:$$missing — run: sudo apt-get install$$missing"; exit 1; fi; \
	fi
	@# the Raspberry Pi image is built through qemu-user: binfmt_misc mounted, qemu-aarch64 registered
	@if [ "$$(uname -m)" != aarch64 ]; then \
	  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then \
	    if [ "$$(id -u)" = 0 ]; then mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; \
	    else echo "binfmt_misc is not mounted — run: sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc"; exit 1; fi; \
	  fi; \
	  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then \
	    if [ "$$(id -u)" = 0 ]; then /usr/lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-aarch64.conf; \
	    else echo "qemu-aarch64 is not registered — run: sudo /usr/lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-aarch64.conf"; exit 1; fi; \
	  fi; \
	fi

$(VENV_STAMP): setup.cfg pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[scan,receiver,dev,tpm]'
	touch $(VENV_STAMP)

firmware-deps: $(VENV_STAMP)
	@bash tests/box/install_micropython.sh

run: $(VENV_STAMP) verifier
	$(PY) -m device.cli demo $(DEMO)
	$(PY) -m device.cli --config $(DEMO)/station.toml run --with-receiver

run-units: $(VENV_STAMP)
	$(PY) -m device.sync.demo build/demo-units

verifier: $(VENV_STAMP)
	$(PY) -m verifier.build

# The demo station again from an empty journal (new keys, no votes, a fresh receiver).
demo-reset: $(VENV_STAMP)
	$(PY) -m device.cli demo $(DEMO) --reset

# `make screenshots` retakes the screenshots of every screen shown in the README and the chair guide;
# `make test` saves its own in an ignored build folder, so a test run leaves the tree as it was.
SHOTS := $(CURDIR)/docs/screenshots
TEST_SHOTS := $(CURDIR)/build/screenshots

# The real-browser tests run on their own, after the rest, so no other test's threads share their process.
# Then one boot of the built amd64 image (built or taken from the per-user cache, keyed by its recipe).
test: $(VENV_STAMP) firmware-deps image-deps
	$(PY) -m pytest -q -n 2 -m "not browser and not image" $(PYTEST_ARGS)
	POLLBOX_SCREENSHOTS=$(TEST_SHOTS) $(PY) -m pytest -q -m browser $(PYTEST_ARGS)
	$(PY) -m pytest -q -n 0 -m smoke tests/image $(PYTEST_ARGS)

quick: $(VENV_STAMP) firmware-deps
	$(PY) -m pytest -q -n 2 -m "not slow and not browser and not image" $(PYTEST_ARGS)
	$(PY) -m pytest -q -m "browser and not slow" $(PYTEST_ARGS)

lint: $(VENV_STAMP)
	$(PY) -m ruff check device web_ui provisioning receiver protocol tools verifier bench tests
	$(PY) -m mypy device/core protocol
	$(PY) -m mypy device web_ui provisioning receiver protocol tools verifier --exclude device/firmware
	$(PY) -m pyright -p device/firmware

bench: $(VENV_STAMP)
	$(PY) -m bench.run
	$(PY) -m bench.plot bench/results.json bench/scaling.svg

docs: $(VENV_STAMP)
	$(PY) -m device.cli docs

fonts: $(VENV_STAMP) system-deps
	$(PY) -m tools.fontbuild

screenshots: $(VENV_STAMP)
	POLLBOX_SCREENSHOTS=$(SHOTS) $(PY) -m pytest -q -m browser tests/web

ARCH ?= amd64
SUITE ?= trixie
ELECTION_ID ?=
CEC_PUBLIC_KEY ?=
image: image-deps $(VENV_STAMP)
	PYTHON=$(CURDIR)/$(PY) POLLBOX_SUITE="$(SUITE)" POLLBOX_ELECTION_ID="$(ELECTION_ID)" \
	  POLLBOX_CEC_PUBLIC_KEY="$(CEC_PUBLIC_KEY)" bash provisioning/image/debian/build.sh $(ARCH) build/image

# The boot tests build their own image (with a test CEC key) under build/image/test/. firmware-deps: the smart
# box's checks run the box's MicroPython firmware on the host, and skip without it.
image-test: image-deps firmware-deps $(VENV_STAMP)
	$(PY) -m pytest -q -n 0 -m image tests/image $(PYTEST_ARGS)

image-pigen:
	bash provisioning/image/build.sh image --out build/image --election-id "$(ELECTION_ID)" --cec-public-key "$(CEC_PUBLIC_KEY)"

clean:
	rm -rf .venv var build *.egg-info
