# Stand-in for livekit/livekit-server (no image registry here): the binary scripts/setup.sh builds
# from the pinned Go module, on the Debian stand-in root file system (the official image is
# Alpine; compose's health check needs `wget`, which is here as GNU wget instead of busybox's).
ARG ROOTFS
FROM ${ROOTFS}
COPY livekit-server /livekit-server
EXPOSE 7880 7881 7882/udp
ENTRYPOINT ["/livekit-server"]
