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
HELM_DOCS_VERSION=v1.14.2
HELM_UNITTEST_VERSION=v1.1.2
# the newest release whose source the module proxy serves; its CRDs give kubeconform's schemas
PROMETHEUS_OPERATOR_VERSION=v0.85.0
# KEDA's ScaledObject CRD, from its Go module (the chart's autoscaling.keda renders one)
KEDA_VERSION=v2.21.0

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

# Debian packages: speech for the VAD, Chromium for the web page's browser tests (the release's
# package: its version is the one Debian ships).
need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v chromium >/dev/null || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${need_apt[*]}: install them with apt-get (root needed)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null \
    || die "apt-get install ${need_apt[*]} failed"
fi

# The web page's packages (livekit-client, esbuild, playwright-core) from its npm lock; the tests
# build the page with them (`npm run build`), the image in its own build stage.
command -v npm >/dev/null || die "node (>= 20) and npm are required for the web page (web/)"
web_sum=$(cat web/package-lock.json | sha256sum | cut -d' ' -f1)
if ! stamp_ok web/node_modules/.lock-sum "$web_sum"; then
  (cd web && npm ci --no-audit --no-fund --loglevel=error) >&2 || die "npm ci in web/ failed"
  echo "$web_sum" > web/node_modules/.lock-sum
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
# The source directory of a module at a version, through the module proxy.
go_module_dir() { # module version
  command -v go >/dev/null || die "go (>= 1.26) is required to fetch $1 $2"
  local dir
  dir=$(go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || die "could not download $1 $2 through the Go module proxy"
  echo "$dir"
}
# Modules whose go.mod has replace directives, which `go install pkg@version` refuses: built in
# their own downloaded source.
go_build_in_module() { # name version module package
  local name=$1 version=$2 module=$3 pkg=$4
  if stamp_ok "$BIN/.$name.version" "$version" && [ -x "$BIN/$name" ]; then return; fi
  echo "setup: building $name $version (first run only, a few minutes)" >&2
  local src; src=$(go_module_dir "$module" "$version")
  (cd "$src" && go build -o "$BIN/$name" "$pkg") >&2 || die "building $name $version failed"
  echo "$version" > "$BIN/.$name.version"
}
# Prometheus and promtool: the release docker-compose.yml deploys, from its Go module (whose
# versions are v0.XYY.Z for X.Y.Z), so the tests and the compose stand-in run what compose pins.
# Static (CGO off, netgo as in the release build) so the binary runs in any stand-in image; without
# the release's builtinassets tag the web UI is not compiled in (it would need an npm build), the
# HTTP API is complete. Service discovery is cut to what Prometheus always builds in (file, http;
# static targets need none), the way its docs describe (plugins/plugins.go emptied): the cloud and
# Kubernetes SDKs are most of the build, which then takes 40 % less CPU time.
PROMETHEUS_RECIPE="sd: file http"
build_prometheus() {
  local tag; tag=$(sed -n 's|^[[:space:]]*image: prom/prometheus:\(v[0-9.]*\)[[:space:]]*$|\1|p' \
    docker-compose.yml)
  [[ $tag =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || die "no prom/prometheus:vX.Y.Z in docker-compose.yml"
  local version; version=$(printf 'v0.%d%02d.%d' "${BASH_REMATCH[@]:1:3}")
  if stamp_ok "$BIN/.prometheus.version" "$tag" && stamp_ok "$BIN/.promtool.version" "$tag" \
     && stamp_ok "$BIN/.prometheus.recipe" "$PROMETHEUS_RECIPE" \
     && [ -x "$BIN/prometheus" ] && [ -x "$BIN/promtool" ]; then return; fi
  echo "setup: building prometheus and promtool $tag (first run only, a few minutes)" >&2
  local src; src=$(go_module_dir github.com/prometheus/prometheus "$version")
  [ "v$(cat "$src/VERSION")" = "$tag" ] || die "module $version is Prometheus $(cat "$src/VERSION"), not $tag"
  local tmp; tmp=$(mktemp -d)
  cp -r "$src" "$tmp/src" && chmod -R u+w "$tmp/src" && printf 'package plugins\n' > "$tmp/src/plugins/plugins.go"
  (cd "$tmp/src" && CGO_ENABLED=0 go build -trimpath -tags netgo -o "$tmp/" \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=${tag#v}" \
      ./cmd/prometheus ./cmd/promtool) >&2 || { rm -rf "$tmp"; die "building Prometheus $tag failed"; }
  mv "$tmp/prometheus" "$tmp/promtool" "$BIN/"; rm -rf "$tmp"
  echo "$tag" > "$BIN/.prometheus.version"; echo "$tag" > "$BIN/.promtool.version"
  echo "$PROMETHEUS_RECIPE" > "$BIN/.prometheus.recipe"
}

# The Go builds run side by side: each leaves cores idle while it downloads modules and links.
go_builds=()
go_build_in_module livekit-server "$LIVEKIT_SERVER_VERSION" github.com/livekit/livekit-server \
  ./cmd/server & go_builds+=($!)
# helm-unittest is a helm plugin; the tests run its binary directly (no plugin install needed).
go_build_in_module helm-unittest "$HELM_UNITTEST_VERSION" github.com/helm-unittest/helm-unittest \
  ./cmd/helm-unittest & go_builds+=($!)
build_prometheus & go_builds+=($!)
{ go_tool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm
  go_tool kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform
  go_tool helm-docs "$HELM_DOCS_VERSION" github.com/norwoodj/helm-docs/cmd/helm-docs; } & go_builds+=($!)
for pid in "${go_builds[@]}"; do wait "$pid" || die "a Go build failed (its error is above)"; done

# kubeconform schemas of the Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule) and KEDA's
# ScaledObject, converted from the CRDs each project publishes in its module source.
CRD_SCHEMAS=$CACHE/crd-schemas
crd_stamp="$PROMETHEUS_OPERATOR_VERSION $KEDA_VERSION $(sha256sum scripts/crd_schemas.py | cut -c1-16)"
if ! stamp_ok "$CRD_SCHEMAS/.version" "$crd_stamp"; then
  src=$(go_module_dir github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION")
  keda=$(go_module_dir github.com/kedacore/keda/v2 "$KEDA_VERSION")
  mkdir -p "$CRD_SCHEMAS"
  .venv/bin/python -m scripts.crd_schemas "$CRD_SCHEMAS" \
    "$src"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml \
    "$keda"/config/crd/bases/keda.sh_scaledobjects.yaml \
    || die "converting the Prometheus Operator $PROMETHEUS_OPERATOR_VERSION / KEDA $KEDA_VERSION CRDs failed"
  echo "$crd_stamp" > "$CRD_SCHEMAS/.version"
fi
