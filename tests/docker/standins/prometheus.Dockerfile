# Stand-in for prom/prometheus (no image registry here): Debian's prometheus binary (the release
# the host's apt has, older than the compose file's tag; see the VERSION label) on the Debian
# stand-in root file system, laid out like the official image: /bin/prometheus as entry point,
# user nobody, data in /prometheus, wget for compose's health check.
ARG ROOTFS
FROM ${ROOTFS}
ARG VERSION=unknown
LABEL org.voice-agents.standin.prometheus-version="${VERSION}"
COPY prometheus /bin/prometheus
RUN mkdir -p /prometheus /etc/prometheus \
    && chown nobody:nogroup /prometheus /etc/prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
VOLUME ["/prometheus"]
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
