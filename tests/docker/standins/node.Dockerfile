# Stand-in for the official Node image of the Dockerfile's web-build stage (no image registry
# here): the host's node and npm (scripts/setup.sh requires them) on the Debian stand-in root file
# system, laid out like the official image (/usr/local/bin/node, npm). Differences: the host's
# Node release instead of the tag's, and the host's CA bundle is trusted (a TLS-intercepting
# egress proxy signs with its own CA), so `npm ci` reaches the registry as it does on the host.
ARG ROOTFS
FROM ${ROOTFS}
COPY node /usr/local/bin/node
COPY npm/ /usr/local/lib/node_modules/npm/
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
    && node --version && npm --version
CMD ["node"]
