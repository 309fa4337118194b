#!/usr/bin/env bash
# Sets up everything qamoe-live needs on a fresh Debian/Ubuntu x86_64 or aarch64 machine:
# system packages (when root or sudo is available), a virtual environment in .venv and the project in it.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-train,build,test}
# System packages the runtime and the tests use. Kept short; each line says why.
APT_PACKAGES=(
  espeak-ng   # speech synthesis: real spoken test input for the ASR and audio features
  libportaudio2       # PortAudio: the native library sounddevice (microphone capture) loads
  pulseaudio          # the virtual microphone for tests/CI (tools/pulse_mic.sh): null sink + remapped monitor
  pulseaudio-utils    # pactl/paplay/parecord: start-up checks and playing speech into the virtual microphone
  libasound2-plugins  # ALSA's `pulse` device, through which PortAudio/sounddevice records from PulseAudio
  gcc                 # compiles the audio DSP for this CPU (tools/build_engine.py, stage dsp); without it: numpy
  libc6-dev           # the C headers and libm that build needs
  nats-server         # NATS with JetStream: the broker of qamoe-bridge and the fleet tests (tests/support/nats.py)
  chromium            # the real browser of qamoe-web's tests (headless, driven by Selenium; never downloaded)
  chromium-driver     # chromedriver for that browser, the same version, for Selenium
)

install_apt() {
  [ ${#APT_PACKAGES[@]} -eq 0 ] && return 0
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      echo "setup: missing system packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
      return 1
    fi
  fi
  echo "setup: installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

check_owner() {
  # A venv shared with another checkout (a symlinked .venv in a git worktree, say) must not be re-pointed at this
  # one: its console scripts would then run this checkout's code for the other. Refuse, and say what to do.
  [ -x "$VENV/bin/python" ] || return 0
  local here there
  here=$(pwd -P)
  there=$(cd / && "$here/$VENV/bin/python" -I -c 'import pathlib, qamoe; print(pathlib.Path(qamoe.__file__).resolve().parents[1])' 2>/dev/null) || return 0
  [ "$there" = "$here" ] && return 0
  echo "setup: $VENV has the project of $there installed, not this checkout ($here); give this checkout its own (VENV=.venv-local bash tools/setup_env.sh), or remove $VENV if it is stale" >&2
  return 1
}

install_python() {
  check_owner
  if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$EXTRAS"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing qamoe-live[$EXTRAS] into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    touch "$stamp"
  fi
}

install_apt
install_python
echo "setup: ok ($VENV)"
