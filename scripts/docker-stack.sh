#!/usr/bin/env bash
# The Docker side of the tests and of `make stack`, for a machine with no image registry.
#
#   scripts/docker-stack.sh install    Debian's docker.io + debootstrap (apt, as root) and Docker
#                                      Compose v2 built from its Go module (pinned, under .cache/)
#   scripts/docker-stack.sh start      a dockerd of our own (never the system one): data root under
#                                      .cache/docker, own exec root and socket under /run
#   scripts/docker-stack.sh standins   stand-ins for the registry images, built locally and tagged
#                                      with the exact names the Dockerfile and docker-compose.yml use
#   scripts/docker-stack.sh up | down  make stack: the compose stack with the provider fakes
#   scripts/docker-stack.sh stop       stop our dockerd (its containers go with it)
#   scripts/docker-stack.sh env        print the exports that point a docker CLI at our dockerd
#
# Everything is idempotent: a second run only checks (stand-ins are rebuilt only when their
# inputs change, recorded in an image label). Fails with one line naming what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/.cache
DCACHE=$CACHE/docker
COMPOSE_VERSION=v2.40.3
STANDIN_DIR=$ROOT/tests/docker/standins
STANDIN_LABEL=org.voice-agents.standin.inputs
ROOTFS_PACKAGES=python3.11,python3.11-venv,python3-distutils,ca-certificates,wget,netbase,tzdata

die() { echo "docker-stack: $*" >&2; exit 1; }
say() { echo "docker-stack: $*" >&2; }

# Debian's docker.io CLI, the same release as its dockerd: another `docker` earlier on PATH may
# need buildx for `docker build`, which this machine does not have.
DOCKER=/usr/bin/docker
# One daemon per cache directory (worktrees that share .cache share it). The exec root holds the
# sockets, so it lives under /run: a deep checkout path would exceed the 108-byte socket limit.
key=$(realpath -m "$CACHE" | sha256sum | cut -c1-10)
EXEC_ROOT=/run/voice-agents-docker-$key
SOCK=$EXEC_ROOT/docker.sock
export DOCKER_HOST=unix://$SOCK
export DOCKER_CONFIG=$DCACHE/config     # cli-plugins/docker-compose lives here
export DOCKER_BUILDKIT=1                # the Dockerfile's COPY --chmod needs BuildKit
export COMPOSE_PROJECT_NAME=voice-agents
export COMPOSE_BAKE=false              # no buildx here: compose builds through dockerd itself

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

install() {
  local need=()
  { command -v dockerd >/dev/null && [ -x "$DOCKER" ]; } || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${need[*]}: install them with apt-get (root needed)"
    say "installing ${need[*]} (apt)"
    apt-get update -qq >/dev/null
    # policy-rc.d or no init system: the package's own daemon is never started by us
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
      >/dev/null || die "apt-get install ${need[*]} failed"
  fi
  # network and disk bound: beside the CPU-bound Compose build
  rootfs_tarball & local rootfs=$!
  local plugins=$DOCKER_CONFIG/cli-plugins
  if ! { stamp_ok "$plugins/.docker-compose.version" "$COMPOSE_VERSION" \
         && [ -x "$plugins/docker-compose" ]; }; then
    command -v go >/dev/null || die "go is required to build Docker Compose $COMPOSE_VERSION"
    say "building Docker Compose $COMPOSE_VERSION (first run only, a few minutes)"
    # `go install` refuses the module (its go.mod has exclude directives): build it in place
    local src
    src=$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" \
          | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -d "$src" ] || die "could not download Docker Compose $COMPOSE_VERSION source"
    mkdir -p "$plugins"
    (cd "$src" && CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
        -o "$plugins/docker-compose" ./cmd) >&2 \
      || die "building Docker Compose $COMPOSE_VERSION failed"
    echo "$COMPOSE_VERSION" > "$plugins/.docker-compose.version"
  fi
  wait "$rootfs" || die "building the stand-in root file system failed (see above)"
}

daemon_up() { "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start() {
  if daemon_up; then say "dockerd already running on $SOCK"; echo reused; return; fi
  command -v dockerd >/dev/null || die "dockerd missing: run scripts/docker-stack.sh install"
  [ "$(id -u)" = 0 ] || die "dockerd needs root (bridge networks, iptables)"
  mkdir -p "$EXEC_ROOT" "$DCACHE/data"
  # --ip: ports a compose file publishes without an address bind to loopback only.
  # Own containerd namespaces, so a system containerd (if any) never sees our containers.
  setsid dockerd \
    --data-root "$DCACHE/data" --exec-root "$EXEC_ROOT" --pidfile "$EXEC_ROOT/dockerd.pid" \
    --host "unix://$SOCK" --ip 127.0.0.1 \
    --containerd-namespace voice-agents --containerd-plugins-namespace voice-agents-plugins \
    >>"$DCACHE/dockerd.log" 2>&1 </dev/null &
  local i
  for i in $(seq 1 120); do
    daemon_up && { say "dockerd up on $SOCK"; echo started; return; }
    kill -0 $! 2>/dev/null || break
    sleep 0.5
  done
  tail -20 "$DCACHE/dockerd.log" >&2
  die "dockerd did not come up (log: $DCACHE/dockerd.log)"
}

stop() {
  local pidfile=$EXEC_ROOT/dockerd.pid pid
  [ -f "$pidfile" ] || { say "no dockerd of ours running"; return; }
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    # dockerd stops its containers (their stop timeouts apply) before it exits
    kill -TERM "$pid"
    local i
    for i in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { say "dockerd $pid still running after 60 s: SIGKILL"; kill -KILL "$pid"; }
  fi
  rm -rf "$EXEC_ROOT"
  say "dockerd stopped"
}

# --- stand-in images ---------------------------------------------------------------------------

# The names to stand in for, read from the files that use them (so they cannot drift).
python_tag() { sed -n 's/^FROM \([^ ]*\) AS deps$/\1/p' Dockerfile; }
node_tag() { sed -n 's/^FROM \([^ ]*\) AS web-build$/\1/p' Dockerfile; }
compose_image() { sed -n "s|^[[:space:]]*image: \\($1:[^[:space:]]*\\).*|\\1|p" docker-compose.yml | head -1; }

image_inputs() { "$DOCKER" image inspect -f "{{index .Config.Labels \"$STANDIN_LABEL\"}}" "$1" 2>/dev/null || true; }

# build_standin TAG DOCKERFILE CONTEXT INPUTS [build args...]
build_standin() {
  local tag=$1 file=$2 ctx=$3 inputs=$4; shift 4
  if [ "$(image_inputs "$tag")" = "$inputs" ]; then say "stand-in $tag is current"; return; fi
  say "building stand-in $tag"
  "$DOCKER" build -q -f "$file" --label "$STANDIN_LABEL=$inputs" -t "$tag" "$@" "$ctx" >/dev/null \
    || die "building stand-in $tag failed"
}

# The host's Debian mirror and release, read from its apt configuration (nothing hard-coded).
host_mirror() {
  local codename=$1
  apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Identifier: Packages' 2>/dev/null \
    | awk -v rel="$codename" '$2 == rel { print $1; exit }'
}

# The stand-in root file system's release, tag and tarball: "codename tag tarball".
rootfs_names() {
  # shellcheck disable=SC1091
  local codename; codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || die "cannot tell this host's Debian release from /etc/os-release"
  local sum; sum=$(printf '%s\n' "$codename" "$ROOTFS_PACKAGES" minbase | sha256sum | cut -c1-12)
  echo "$codename voice-agents-standin/rootfs:$codename-$sum $DCACHE/standins/rootfs-$codename-$sum.tar"
}

# debootstrap into a tarball (no Docker needed, so `install` runs it beside the Compose build).
rootfs_tarball() {
  local codename tag tarball; read -r codename tag tarball < <(rootfs_names)
  [ -f "$tarball" ] && return
  command -v debootstrap >/dev/null || die "debootstrap missing: run scripts/docker-stack.sh install"
  local mirror; mirror=$(host_mirror "$codename")
  [ -n "$mirror" ] || die "no apt source for $codename in this host's apt configuration"
  say "debootstrap $codename from the host's mirror (first run only, a few minutes)"
  mkdir -p "$DCACHE/debootstrap-cache"
  local dir; dir=$(mktemp -d "$DCACHE/rootfs.XXXXXX")
  debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" \
    --cache-dir="$DCACHE/debootstrap-cache" "$codename" "$dir/root" "$mirror" \
    >"$DCACHE/debootstrap.log" 2>&1 \
    || { rm -rf "$dir"; die "debootstrap failed (log: $DCACHE/debootstrap.log)"; }
  # the image needs no package lists or apt cache
  rm -rf "$dir"/root/var/lib/apt/lists/* "$dir"/root/var/cache/apt/*
  mkdir -p "$DCACHE/standins"
  tar -C "$dir/root" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$dir"
}

rootfs_image() {
  local codename tag tarball; read -r codename tag tarball < <(rootfs_names)
  if "$DOCKER" image inspect "$tag" >/dev/null 2>&1; then echo "$tag"; return; fi
  rootfs_tarball
  "$DOCKER" import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' \
    --change "LABEL $STANDIN_LABEL=debootstrap-${tag##*:}" "$tarball" "$tag" >/dev/null \
    || die "docker import of $tarball failed"
  echo "$tag"
}

standins() {
  daemon_up || die "our dockerd is not running: scripts/docker-stack.sh start"
  local rootfs; rootfs=$(rootfs_image)
  local ctx; ctx=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: ctx is local
  trap "rm -rf '$ctx'" EXIT
  local hash_of='sha256sum | cut -c1-16'

  # Python base: trusts what the host trusts (a TLS-intercepting egress proxy has its own CA)
  local py; py=$(python_tag)
  [ -n "$py" ] || die "no 'FROM <image> AS deps' line in Dockerfile"
  mkdir -p "$ctx/python"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/python/ca-certificates.crt"
  build_standin "$py" "$STANDIN_DIR/python.Dockerfile" "$ctx/python" \
    "$(cat "$STANDIN_DIR/python.Dockerfile" "$ctx/python/ca-certificates.crt" <(echo "$rootfs") | eval "$hash_of")" \
    --build-arg "ROOTFS=$rootfs"

  # Node for the web page's build stage: the host's node and npm, trusting what the host trusts
  local node; node=$(node_tag)
  [ -n "$node" ] || die "no 'FROM <image> AS web-build' line in Dockerfile"
  local node_bin; node_bin=$(command -v node) || die "no node: scripts/setup.sh needs it"
  local npm_dir; npm_dir=$(dirname "$(dirname "$(realpath "$(command -v npm)")")")
  mkdir -p "$ctx/node"
  cp "$(realpath "$node_bin")" "$ctx/node/node" && cp -r "$npm_dir" "$ctx/node/npm"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/node/ca-certificates.crt"
  build_standin "$node" "$STANDIN_DIR/node.Dockerfile" "$ctx/node" \
    "$(cat "$STANDIN_DIR/node.Dockerfile" "$ctx/node/node" "$ctx/node/ca-certificates.crt" \
       "$npm_dir/package.json" <(echo "$rootfs") | eval "$hash_of")" \
    --build-arg "ROOTFS=$rootfs"

  # livekit-server: our pinned source build (scripts/setup.sh), version checked against compose
  local lk; lk=$(compose_image livekit/livekit-server)
  local lk_bin=$CACHE/bin/livekit-server
  [ -x "$lk_bin" ] || die "no $lk_bin: run scripts/setup.sh"
  [ "livekit/livekit-server:$(cat "$CACHE/bin/.livekit-server.version")" = "$lk" ] \
    || die "docker-compose.yml uses $lk but scripts/setup.sh builds $(cat "$CACHE/bin/.livekit-server.version")"
  mkdir -p "$ctx/livekit" && cp "$lk_bin" "$ctx/livekit/livekit-server"
  build_standin "$lk" "$STANDIN_DIR/livekit-server.Dockerfile" "$ctx/livekit" \
    "$(cat "$STANDIN_DIR/livekit-server.Dockerfile" "$lk_bin" <(echo "$rootfs") | eval "$hash_of")" \
    --build-arg "ROOTFS=$rootfs"

  # Prometheus and promtool: the compose file's release built from its module by scripts/setup.sh
  local prom; prom=$(compose_image prom/prometheus)
  local prom_bin=$CACHE/bin/prometheus promtool_bin=$CACHE/bin/promtool
  [ -x "$prom_bin" ] && [ -x "$promtool_bin" ] || die "no $prom_bin or $promtool_bin: run scripts/setup.sh"
  [ "prom/prometheus:$(cat "$CACHE/bin/.prometheus.version")" = "$prom" ] \
    || die "docker-compose.yml uses $prom but scripts/setup.sh built $(cat "$CACHE/bin/.prometheus.version")"
  mkdir -p "$ctx/prometheus" && cp "$prom_bin" "$promtool_bin" "$ctx/prometheus/"
  build_standin "$prom" "$STANDIN_DIR/prometheus.Dockerfile" "$ctx/prometheus" \
    "$(cat "$STANDIN_DIR/prometheus.Dockerfile" "$prom_bin" "$promtool_bin" <(echo "$rootfs") \
       | eval "$hash_of")" \
    --build-arg "ROOTFS=$rootfs" \
    --build-arg "VERSION=$("$prom_bin" --version 2>&1 | sed -n '1s/^prometheus, version \([^ ]*\).*/\1/p')"
}

# --- make stack ---------------------------------------------------------------------------------

COMPOSE_FILES=(-f docker-compose.yml -f tests/docker/compose.fakes.yml)

up() {
  bash scripts/setup.sh
  install
  start >/dev/null
  standins
  "$DOCKER" compose "${COMPOSE_FILES[@]}" up -d --build --wait \
    || die "docker compose up failed: $DOCKER compose ${COMPOSE_FILES[*]} logs"
  "$DOCKER" compose "${COMPOSE_FILES[@]}" ps
}

down() {
  if daemon_up; then
    "$DOCKER" compose "${COMPOSE_FILES[@]}" down --volumes --remove-orphans --timeout 30
  fi
  stop
}

env_exports() {
  printf 'export DOCKER_HOST=%q DOCKER_CONFIG=%q DOCKER_BUILDKIT=1\n' "$DOCKER_HOST" "$DOCKER_CONFIG"
}

case "${1:-}" in
  install) install ;;
  start) install; start ;;
  stop) stop ;;
  standins) standins ;;
  up) up ;;
  down) down ;;
  env) env_exports ;;
  *) die "usage: scripts/docker-stack.sh install|start|stop|standins|up|down|env" ;;
esac
