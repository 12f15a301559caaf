# Stand-in for the official Python image the Dockerfile names (there is no image registry here).
# Built by scripts/docker-stack.sh from a debootstrap root file system of the host's Debian
# release, with Debian's python3.11, laid out like the official image where the Dockerfile
# relies on it: `python`/`python3` in /usr/local/bin, pip and setuptools installed under
# /usr/local from the wheels python3.11-venv ships (Debian disables ensurepip for its python; a
# pip that pip installed can uninstall itself, as in the official image), no PEP 668 marker,
# groupadd/useradd.
# Differences: Debian's CPython patch release and build instead of python.org's, wget is present,
# and the host's CA bundle is trusted (a TLS-intercepting egress proxy signs with its own CA).
ARG ROOTFS
FROM ${ROOTFS}
ENV LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN set -eux; \
    rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED; \
    ln -s /usr/bin/python3.11 /usr/local/bin/python; \
    ln -s /usr/bin/python3.11 /usr/local/bin/python3; \
    set -- /usr/share/python-wheels/pip-*.whl; \
    python "$1/pip" install --no-index --no-cache-dir \
        --find-links /usr/share/python-wheels pip setuptools; \
    python -m pip --version; \
    command -v groupadd useradd; \
    rm -rf /root/.cache
CMD ["python3"]
