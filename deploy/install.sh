#!/usr/bin/env bash
# Install robovision as a systemd service on Raspberry Pi OS 64-bit (Bookworm or Trixie).
#
#   sudo deploy/install.sh              install or update, then start the service
#   deploy/install.sh --dry-run         print every step without doing it (on any machine:
#                                       what does not fit is reported as a warning)
#   sudo deploy/install.sh --force      also on a machine that is not a Raspberry Pi
#   sudo deploy/install.sh --no-start   install and enable, but do not (re)start
#
# What it does (each step is skipped when already done, so running it again is safe):
#   1. apt: python3-picamera2 (camera library, from Raspberry Pi OS) and python3-venv
#   2. the `robovision` system user, in the `video` group (camera devices)
#   3. a venv in /opt/robovision/venv with --system-site-packages, so it sees picamera2
#   4. robovision into that venv, numpy pinned to Debian's own (see NUMPY below)
#   5. the models into /opt/robovision/models
#   6. /etc/robovision/config.toml from deploy/config.example.toml (an existing one is kept)
#   7. the systemd unit, enabled and (re)started
#
# NUMPY: picamera2's compiled helpers from apt (simplejpeg, python3-av, ...) are built
# against Debian's python3-numpy: 1.24 on Bookworm, 2.x on Trixie. A different numpy inside
# the venv would shadow it and break them, so pip is constrained to exactly Debian's
# version; on Bookworm that also means opencv-python-headless < 4.12 (4.12 needs numpy 2).
set -euo pipefail

PREFIX=/opt/robovision
CONFIG_DIR=/etc/robovision
UNIT_PATH=/etc/systemd/system/robovision.service
SERVICE_USER=robovision
# Debian's own Python: the venv must be built on it to see python3-picamera2.
SYSTEM_PYTHON=/usr/bin/python3
SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN=0
FORCE=0
START=1

usage() {
    # The comment block at the top of this file, whole.
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
    echo "options: --dry-run  --force  --no-start  --help"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --force) FORCE=1 ;;
        --no-start) START=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

step() { printf '\n== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }
run() {
    printf '+ %s\n' "$*"
    if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}
refuse() {
    echo "install.sh: $*" >&2
    exit 1
}
warn() { echo "install.sh: warning: $*" >&2; }

# -- where are we ------------------------------------------------------------------------

step "checking the system"
OS_ID=unknown OS_LIKE="" CODENAME=unknown
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    OS_ID="${ID:-unknown}" OS_LIKE="${ID_LIKE:-}" CODENAME="${VERSION_CODENAME:-unknown}"
fi
ARCH="$(dpkg --print-architecture 2>/dev/null || uname -m)"
BOARD="unknown board"
if [ -r /proc/device-tree/model ]; then BOARD="$(tr -d '\0' </proc/device-tree/model)"; fi
note "os: $OS_ID $CODENAME ($ARCH), board: $BOARD"

problems=()
case " $OS_ID $OS_LIKE " in
    *" debian "*|*" raspbian "*) ;;
    *) problems+=("this is not Debian or Raspberry Pi OS (ID=$OS_ID); the steps use apt and systemd") ;;
esac
case "$CODENAME" in
    bookworm|trixie) ;;
    *) problems+=("release '$CODENAME' is untested; robovision supports Bookworm and Trixie") ;;
esac
[ "$ARCH" = arm64 ] || [ "$ARCH" = aarch64 ] || problems+=("architecture $ARCH: install the 64-bit Raspberry Pi OS")
case "$BOARD" in
    *"Raspberry Pi"*) ;;
    *) problems+=("this machine is not a Raspberry Pi ($BOARD); python3-picamera2 comes from Raspberry Pi OS") ;;
esac
MODEL="$SRC_DIR/models/toycar.tflite"
MODEL_MISSING=0
if [ ! -f "$MODEL" ]; then
    MODEL_MISSING=1
    fix="restore it (git checkout -- models/) or rebuild it (robovision train --config models/toycar.train.toml --out models/)"
    problems+=("$MODEL is missing, so this checkout is incomplete: $fix")
fi
if [ ${#problems[@]} -gt 0 ]; then
    if [ "$DRY_RUN" -eq 1 ]; then
        for p in "${problems[@]}"; do warn "$p"; done
        if [ "$MODEL_MISSING" -eq 1 ]; then
            warn "a real install stops here until the model is in place; the steps follow anyway"
        elif [ "$FORCE" -eq 0 ]; then
            warn "a real install here needs --force; the steps follow anyway"
        fi
    else
        for p in "${problems[@]}"; do echo "install.sh: $p" >&2; done
        [ "$MODEL_MISSING" -eq 0 ] || refuse "refusing to install without the model"
        [ "$FORCE" -eq 1 ] || refuse "refusing to install here; pass --force to go ahead anyway"
        note "--force given: going ahead anyway"
    fi
fi
if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    refuse "run it as root (sudo $0), or with --dry-run to see the steps"
fi
[ "$DRY_RUN" -eq 1 ] && note "dry run: printing the steps, changing nothing"

# -- 1. packages ---------------------------------------------------------------------------

step "1. system packages"
run apt-get update
run apt-get install -y --no-install-recommends python3-picamera2 python3-venv python3-numpy

# -- 2. user ---------------------------------------------------------------------------------

step "2. service user $SERVICE_USER"
if id "$SERVICE_USER" >/dev/null 2>&1; then
    note "user $SERVICE_USER exists"
    run usermod --append --groups video "$SERVICE_USER"
else
    run useradd --system --user-group --groups video --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin "$SERVICE_USER"
fi

# -- 3. venv ---------------------------------------------------------------------------------

step "3. virtual environment $PREFIX/venv"
if [ -x "$PREFIX/venv/bin/python" ]; then
    note "venv exists"
else
    run install -d -m 0755 "$PREFIX"
    run "$SYSTEM_PYTHON" -m venv --system-site-packages "$PREFIX/venv"
fi

# -- 4. robovision ---------------------------------------------------------------------------

step "4. robovision from $SRC_DIR"
if NUMPY_VERSION="$("$SYSTEM_PYTHON" -c 'import numpy; print(numpy.__version__)' 2>/dev/null)"; then
    note "Debian's numpy: $NUMPY_VERSION"
else
    NUMPY_VERSION="<version of python3-numpy, installed in step 1>"
    note "numpy is not installed yet; step 1 installs it"
fi
CONSTRAINTS="$PREFIX/constraints.txt"
note "writing $CONSTRAINTS:"
note "  numpy==$NUMPY_VERSION"
[ "$CODENAME" = bookworm ] && note "  opencv-python-headless<4.12"
if [ "$DRY_RUN" -eq 0 ]; then
    {
        echo "# Keep Debian's numpy: picamera2's compiled helpers are built against it."
        echo "numpy==$NUMPY_VERSION"
        if [ "$CODENAME" = bookworm ]; then echo "opencv-python-headless<4.12"; fi
    } >"$CONSTRAINTS"
fi
run "$PREFIX/venv/bin/python" -m pip install --upgrade --constraint "$CONSTRAINTS" "$SRC_DIR"

# -- 5. models -------------------------------------------------------------------------------

step "5. models into $PREFIX/models"
run install -d -m 0755 "$PREFIX/models" "$PREFIX/docs"
run cp -r --no-target-directory "$SRC_DIR/models" "$PREFIX/models"
run install -m 0644 "$SRC_DIR/docs/service.md" "$PREFIX/docs/service.md"

# -- 6. config -------------------------------------------------------------------------------

step "6. config $CONFIG_DIR/config.toml"
run install -d -m 0755 "$CONFIG_DIR"
if [ -e "$CONFIG_DIR/config.toml" ]; then
    note "keeping the existing $CONFIG_DIR/config.toml (the example is at $SRC_DIR/deploy/config.example.toml)"
else
    run install -m 0640 -o root -g "$SERVICE_USER" "$SRC_DIR/deploy/config.example.toml" "$CONFIG_DIR/config.toml"
fi

# -- 7. systemd ------------------------------------------------------------------------------

step "7. systemd unit $UNIT_PATH"
run install -m 0644 "$SRC_DIR/systemd/robovision.service" "$UNIT_PATH"
run systemctl daemon-reload
if [ "$START" -eq 1 ]; then
    run systemctl enable robovision.service
    run systemctl restart robovision.service
else
    run systemctl enable robovision.service
    note "--no-start: start it with: sudo systemctl start robovision"
fi

step "done"
note "check:  systemctl status robovision; journalctl -u robovision -f"
note "        sudo -u $SERVICE_USER $PREFIX/venv/bin/robovision doctor --config $CONFIG_DIR/config.toml"
note "watch:  $PREFIX/venv/bin/robovision subscribe   (as a member of group $SERVICE_USER)"
