#!/usr/bin/env bash
# Installs everything the tests need, pinned and cached under .cache/ (git-ignored).
# Idempotent: a second run only checks. Fails with one line naming what it could not get.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/.cache
BIN=$CACHE/bin
mkdir -p "$BIN"

UV_VERSION=0.13.8
LIVEKIT_SERVER_VERSION=v1.13.5  # newest v1.13 whose dependencies the module proxy serves
HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0

die() { echo "setup: $*" >&2; exit 1; }
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# uv, in its own small venv so the system Python stays untouched.
if [ ! -x "$CACHE/uv/bin/uv" ] || ! "$CACHE/uv/bin/uv" --version | grep -q "$UV_VERSION"; then
  python3.11 -m venv "$CACHE/uv" || die "python3.11 with venv is required"
  "$CACHE/uv/bin/pip" install -q "uv==$UV_VERSION" || die "could not install uv==$UV_VERSION"
fi
UV=$CACHE/uv/bin/uv

# Project venv from the hashed lock (re-synced only when the lock changes).
lock_sum=$(cat requirements-dev.lock | sha256sum | cut -d' ' -f1)
if ! stamp_ok .venv/.lock-sum "$lock_sum"; then
  [ -x .venv/bin/python ] || "$UV" venv -q -p python3.11 .venv
  "$UV" pip sync -q -p .venv/bin/python --require-hashes requirements-dev.lock
  echo "$lock_sum" > .venv/.lock-sum
fi

# Static checkers for deploy artefacts, in their own venv.
tools_sum=$(cat requirements-tools.lock | sha256sum | cut -d' ' -f1)
if ! stamp_ok "$CACHE/tools/.lock-sum" "$tools_sum"; then
  [ -x "$CACHE/tools/bin/python" ] || "$UV" venv -q -p python3.11 "$CACHE/tools"
  "$UV" pip sync -q -p "$CACHE/tools/bin/python" --require-hashes requirements-tools.lock
  echo "$tools_sum" > "$CACHE/tools/.lock-sum"
fi

# Debian packages: speech for the VAD, a real Prometheus (and promtool).
need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v promtool >/dev/null || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${need_apt[*]}: install them with apt-get (root needed)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null \
    || die "apt-get install ${need_apt[*]} failed"
fi

# Go tools at pinned releases.
go_tool() { # name version module-path
  local name=$1 version=$2 pkg=$3
  if stamp_ok "$BIN/.$name.version" "$version" && [ -x "$BIN/$name" ]; then return; fi
  command -v go >/dev/null || die "go is required to build $name $version"
  echo "setup: building $name $version (first run only)" >&2
  local tmp; tmp=$(mktemp -d)
  GOBIN=$tmp go install "$pkg@$version" >&2 || die "go install $pkg@$version failed"
  mv "$tmp"/* "$BIN/$name"; rmdir "$tmp"
  echo "$version" > "$BIN/.$name.version"
}
# livekit-server's go.mod has replace directives, so `go install pkg@version` refuses it:
# fetch the module source through the module proxy and build it in place.
if ! { stamp_ok "$BIN/.livekit-server.version" "$LIVEKIT_SERVER_VERSION" && [ -x "$BIN/livekit-server" ]; }; then
  command -v go >/dev/null || die "go (>= 1.26) is required to build livekit-server $LIVEKIT_SERVER_VERSION"
  echo "setup: building livekit-server $LIVEKIT_SERVER_VERSION (first run only, a few minutes)" >&2
  src=$(go mod download -json "github.com/livekit/livekit-server@$LIVEKIT_SERVER_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src" ] || die "could not download livekit-server $LIVEKIT_SERVER_VERSION source"
  (cd "$src" && go build -o "$BIN/livekit-server" ./cmd/server) >&2 \
    || die "building livekit-server $LIVEKIT_SERVER_VERSION failed"
  echo "$LIVEKIT_SERVER_VERSION" > "$BIN/.livekit-server.version"
fi
go_tool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm
go_tool kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform
