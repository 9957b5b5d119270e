#!/bin/sh
# A Debian bookworm base image with python3 and python3-venv, made with debootstrap from a Debian mirror, for
# building the zapvoice image where Docker Hub cannot be reached (the Dockerfile's default base is python:3.11-slim):
#   apt-get update && apt-get install -y docker.io debootstrap
#   docker/make-local-base.sh                 # -> zapvoice-base:bookworm
#   docker build --build-arg BASE=zapvoice-base:bookworm -t zapvoice .
# Usage: make-local-base.sh [TAG]; DEBIAN_MIRROR picks another mirror. Needs root (debootstrap chroots).
set -eu
tag=${1:-zapvoice-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror"
# The certificate authorities this machine added (/usr/local/share/ca-certificates: a company's or a TLS-
# inspecting proxy's), so that pip in the image build trusts what the host trusts. PIP_CERT: pip reads its
# own bundle otherwise, not the system's.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    cp /usr/local/share/ca-certificates/*.crt "$root"/usr/local/share/ca-certificates/
    chroot "$root" update-ca-certificates
fi
# The package lists and downloaded .debs are of no use in the image; they are a third of its size.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
tar -C "$root" --numeric-owner -c . | docker import --change 'CMD ["/bin/bash"]' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' - "$tag"
docker image inspect --format '{{.Id}} {{.Size}}' "$tag"
