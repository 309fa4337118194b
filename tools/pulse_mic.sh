#!/usr/bin/env bash
# A real-time virtual microphone for CI and for trying qamoe-live without a microphone.
#
# Starts a private PulseAudio daemon with a null sink (`qamoe_sink`) whose monitor is remapped into an ordinary
# capture source (`qamoe_mic`, the default source). Anything played into the sink (`paplay --device=qamoe_sink
# talk.wav`) is heard, in real time, by whoever records from the source: sounddevice/PortAudio open it as the
# ALSA device `pulse` (libasound2-plugins routes ALSA to PulseAudio), i.e. `qamoe-live --mic pulse`.
#
#   eval "$(tools/pulse_mic.sh start)"   # starts it (idempotent) and prints the environment to export
#   tools/pulse_mic.sh status            # exit 0 when it answers
#   tools/pulse_mic.sh stop
#
# Needs: pulseaudio pulseaudio-utils libasound2-plugins (and libportaudio2 for sounddevice).
# Works as root: the daemon runs in per-user mode (--system=false) in its own runtime directory with a minimal
# script (-n -F) and an anonymous-auth socket there, so no D-Bus, no login session and no system-wide
# configuration are needed ("This program is not intended to be run as root" is only a warning).
# The directory is $QAMOE_PULSE_DIR (default /tmp/qamoe-pulse-$UID).
set -euo pipefail

DIR=${QAMOE_PULSE_DIR:-/tmp/qamoe-pulse-$(id -u)}
SINK=qamoe_sink
SOURCE=qamoe_mic
SOCKET="$DIR/native"
export HOME="$DIR" XDG_RUNTIME_DIR="$DIR/run" XDG_CONFIG_HOME="$DIR/config" PULSE_SERVER="unix:$SOCKET"

env_lines() {
  echo "export PULSE_SERVER=unix:$SOCKET"
  echo "export PULSE_SOURCE=$SOURCE"
  echo "export QAMOE_PULSE_SINK=$SINK"
}

alive() { [ -S "$SOCKET" ] && timeout 5 pactl info >/dev/null 2>&1; }

start() {
  if alive; then env_lines; return 0; fi
  for tool in pulseaudio pactl paplay; do
    command -v "$tool" >/dev/null || { echo "pulse_mic: $tool not found: apt-get install pulseaudio pulseaudio-utils" >&2; exit 2; }
  done
  mkdir -p "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME"
  chmod 700 "$DIR" "$XDG_RUNTIME_DIR"
  rm -f "$SOCKET"
  # 16 kHz mono: the rate the runtime consumes, so PulseAudio resamples the played file once, on the way in.
  # The silent null source looped into the sink keeps the sink running: without a player, an idle null sink
  # renders in large, late blocks and the remapped source delivers nothing for seconds (measured here), while
  # a real microphone delivers (quiet) samples continuously. With it, the mic streams at 16 kHz from the start.
  cat >"$DIR/mic.pa" <<EOF
load-module module-native-protocol-unix auth-anonymous=1 socket=$SOCKET
load-module module-null-sink sink_name=$SINK rate=16000 channels=1 sink_properties=device.description=$SINK
load-module module-remap-source master=$SINK.monitor source_name=$SOURCE source_properties=device.description=$SOURCE
load-module module-null-source source_name=qamoe_quiet rate=16000 channels=1
load-module module-loopback source=qamoe_quiet sink=$SINK latency_msec=30 source_dont_move=true sink_dont_move=true
set-default-sink $SINK
set-default-source $SOURCE
EOF
  pulseaudio --daemonize=yes --system=false --exit-idle-time=-1 --disallow-exit=no -n -F "$DIR/mic.pa" \
    --use-pid-file=yes --log-target=file:"$DIR/pulse.log" --log-level=warning
  for _ in $(seq 50); do alive && break; sleep 0.1; done
  if ! alive; then
    echo "pulse_mic: PulseAudio did not come up; see $DIR/pulse.log" >&2
    pulseaudio --kill 2>/dev/null || true
    exit 1
  fi
  # The loopback needs ~2 s to settle after start-up, and until then the source delivers nothing: return only
  # once 0.3 s of audio has been recorded from it in a row, so that the first client sees a live microphone.
  local t0=$SECONDS got=0
  while [ "$got" -ne 9600 ]; do
    if [ $((SECONDS - t0)) -ge 15 ]; then
      echo "pulse_mic: $SOURCE delivers no audio; see $DIR/pulse.log" >&2
      stop
      exit 1
    fi
    got=$(timeout 3 parecord --device="$SOURCE" --raw --format=s16le --rate=16000 --channels=1 --latency-msec=20 \
      2>/dev/null | head -c 9600 | wc -c || true)  # parecord ends by SIGPIPE/timeout: only the count matters
  done
  env_lines
}

stop() {
  if alive; then pulseaudio --kill 2>/dev/null || pactl exit 2>/dev/null || true; fi
  for _ in $(seq 30); do [ -S "$SOCKET" ] && alive || break; sleep 0.1; done
  rm -f "$SOCKET"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) alive ;;
  env) env_lines ;;
  *) echo "usage: $0 start|stop|status|env   (eval \"\$($0 start)\" exports PULSE_SERVER/PULSE_SOURCE)" >&2; exit 2 ;;
esac
