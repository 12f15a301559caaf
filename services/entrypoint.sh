#!/bin/sh
# The one entry command of both agents, used by the images and locally:
#   services/entrypoint.sh <agent> start|dev|console|download-files [args...]
# where <agent> is a name of services/registry.py (interrupter, uninterruptable).
# prometheus-client decides its multiprocess mode when it is first imported, so the metrics
# directory must be exported before Python starts; each worker gets its own, emptied here so no
# stale process files from an earlier run are merged into /metrics.
set -eu
service=${1:?usage: entrypoint.sh <agent> <command> [args...]}
shift
# the name becomes a directory below; Python checks it is an agent
case "$service" in
  *[!a-z0-9_-]*|"") echo "entrypoint.sh: bad agent name '$service'" >&2; exit 2 ;;
esac
: "${PROMETHEUS_MULTIPROC_DIR:=${TMPDIR:-/tmp}/voice-agent-metrics/$service}"
export PROMETHEUS_MULTIPROC_DIR
# onnxruntime (Silero) would otherwise write a device id under $HOME and try to upload telemetry
export ORT_DISABLE_TELEMETRY="${ORT_DISABLE_TELEMETRY:-1}"
# The framework preloads its local end-of-turn model (~244 MB) into the process jobs fork from;
# our turn detection is `vad` or `stt`, so it is never used
export LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE="${LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE:-0}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -maxdepth 1 -name '*.db' -delete
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m services "$service" "$@"
