# Stand-in for prom/prometheus (no image registry here): the compose file's release of prometheus
# and promtool, built from its Go module by scripts/setup.sh (see the VERSION label), on the Debian
# stand-in root file system, laid out like the official image: /bin/prometheus as entry point,
# /bin/promtool, user nobody, data in /prometheus. Differences: service discovery by file and HTTP
# only (static targets need none); Debian's wget (the health check) instead of busybox; no web UI
# (built without the release's builtinassets tag, which needs an npm build: the HTTP API is
# complete); no example /etc/prometheus/prometheus.yml, LICENSE or NOTICE (compose mounts
# deploy/prometheus there).
ARG ROOTFS
FROM ${ROOTFS}
ARG VERSION=unknown
LABEL org.voice-agents.standin.prometheus-version="${VERSION}"
COPY prometheus promtool /bin/
RUN mkdir -p /prometheus /etc/prometheus \
    && chown nobody:nogroup /prometheus /etc/prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
VOLUME ["/prometheus"]
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
