# One file, three images. Build an agent, or the web client, with its target:
#   docker build --target interrupter     -t voice-agents-interrupter .
#   docker build --target uninterruptable -t voice-agents-uninterruptable .
#   docker build --target web             -t voice-agents-web .
# Stages: `deps` installs the hashed lock into a venv (pip exists only there); `base` is the
# shared runtime (non-root user, models fetched at build time, metrics dir, health check); the
# two agent stages only add their entry command and labels. `web-build` bundles the page from
# its npm lock; `web` is the base runtime (aiohttp and livekit-api are in the lock) serving it.
# Everything runs through services/entrypoint.sh, exactly as it does outside a container.

# Both stages use the same pinned base image, written out (not an ARG) so that scanners and
# update bots see it; tests/deploy checks the two lines agree.

# --- deps: third-party packages from requirements.lock, binary wheels only (no compiler) -------
FROM python:3.11.14-slim-trixie AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
COPY requirements.lock /tmp/requirements.lock
# The venv has no pip of its own: the image's pip installs into it (`--python`), so the runtime
# stage copies a venv that holds the application's dependencies and nothing else.
RUN python -m venv --without-pip /opt/venv \
    && python -m pip --python /opt/venv/bin/python install \
        --require-hashes --no-deps --only-binary=:all: --compile \
        -r /tmp/requirements.lock

# --- base: what both agents share ---------------------------------------------------------------
FROM python:3.11.14-slim-trixie AS base
# Fixed IDs: the Helm chart's securityContext (runAsUser/runAsGroup/fsGroup) uses the same.
ARG APP_UID=10001
ARG APP_GID=10001
# PROMETHEUS_MULTIPROC_DIR must exist before Python starts (the entry command also creates and
# empties it). Kubernetes mounts an emptyDir on /run/voice-agent (the root fs is read-only there);
# compose mounts a tmpfs. HF_HUB_OFFLINE: whatever a plugin fetches is fetched below, at build
# time, so a running container never downloads a model. ORT_DISABLE_TELEMETRY: onnxruntime (Silero
# VAD) otherwise persists a device id under HOME and uploads usage telemetry.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    HOME=/home/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROMETHEUS_MULTIPROC_DIR=/run/voice-agent/metrics \
    HF_HUB_OFFLINE=1 \
    ORT_DISABLE_TELEMETRY=1
# The runtime image needs no package manager for Python: drop the base image's pip/setuptools
# (nothing here uses them; the venv is isolated from the system site-packages).
RUN groupadd --system --gid "${APP_GID}" app \
    && useradd --system --uid "${APP_UID}" --gid "${APP_GID}" --home-dir /home/app \
        --create-home --shell /usr/sbin/nologin app \
    && install -d -o "${APP_UID}" -g "${APP_GID}" -m 0755 /run/voice-agent /run/voice-agent/metrics \
    && PIP_ROOT_USER_ACTION=ignore python -m pip uninstall --yes --quiet pip setuptools wheel \
    && rm -rf /root/.cache
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
# Code is owned by root and read-only for the agent user; the entry command is executable even
# from a checkout that lost the file mode.
COPY --chown=root:root services/ /app/services/
COPY --chown=root:root --chmod=0755 services/entrypoint.sh /app/services/entrypoint.sh
RUN python -m compileall -q /app/services
USER ${APP_UID}:${APP_GID}
# As the runtime user, so any cache lands in its HOME with its ownership: fetch the files of every
# installed plugin (no keys needed) with the framework's own command (running it through an
# agent's CLI is deprecated since livekit-agents 1.5.10), then load Silero VAD once (its model
# ships in the wheel) to prove onnxruntime runs in this image. Start-up downloads nothing.
RUN python -m livekit.agents download-files \
    && python -c "from livekit.plugins import silero; silero.VAD.load()" \
    && find /run/voice-agent/metrics -mindepth 1 -delete
EXPOSE 8081 9100
# Slim images have no curl: ask the worker's health endpoint with the standard library. 200 is
# healthy; 503 (lost LiveKit), a refused connection or a timeout exit 1 (unhealthy).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import http.client as h, os; c = h.HTTPConnection('127.0.0.1', int(os.environ.get('HEALTH_PORT', '8081')), timeout=4); c.request('GET', '/'); raise SystemExit(c.getresponse().status != 200)"]
# SIGTERM drains: running calls go on for up to DRAIN_TIMEOUT_SECONDS before the worker exits.
STOPSIGNAL SIGTERM
# Build metadata comes from the build (CI passes e.g. --build-arg REVISION=$(git rev-parse HEAD)).
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
ARG SOURCE=""
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-trixie"

# --- final targets: one per agent ---------------------------------------------------------------
FROM base AS interrupter
LABEL org.opencontainers.image.title="voice-agents-interrupter" \
      org.opencontainers.image.description="LiveKit voice agent that politely cuts in when the user has talked for too long"
ENTRYPOINT ["/app/services/entrypoint.sh", "interrupter"]
CMD ["start"]

FROM base AS uninterruptable
LABEL org.opencontainers.image.title="voice-agents-uninterruptable" \
      org.opencontainers.image.description="LiveKit voice agent that finishes what it says even when the user talks over it"
ENTRYPOINT ["/app/services/entrypoint.sh", "uninterruptable"]
CMD ["start"]

# --- web-build: the page, bundled from its npm lock at build time (no CDN at run time) ----------
FROM node:20.20.2-bookworm-slim AS web-build
WORKDIR /web
COPY web/package.json web/package-lock.json ./
# --ignore-scripts: esbuild's install script only re-checks the platform binary npm installed
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY web/src/ ./src/
RUN npm run build

# --- web: the page and its token endpoint (services/web); see README, "Talk to the agents" ------
FROM base AS web
COPY --from=web-build --chown=root:root /web/dist/ /app/web/dist/
LABEL org.opencontainers.image.title="voice-agents-web" \
      org.opencontainers.image.description="Web client: talk to an agent from a browser and see what it heard"
EXPOSE 8080
# /healthz is 200 once the server answers and the page is in place
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import http.client as h, os; c = h.HTTPConnection('127.0.0.1', int(os.environ.get('WEB_PORT', '8080')), timeout=4); c.request('GET', '/healthz'); raise SystemExit(c.getresponse().status != 200)"]
ENTRYPOINT ["python", "-m", "services.web"]
