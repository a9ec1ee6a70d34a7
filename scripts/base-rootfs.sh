#!/usr/bin/env bash
# Build the Python base image's root filesystem with debootstrap, as a gzipped tarball.
#   scripts/base-rootfs.sh OUT.tar.gz MIRROR SECURITY_MIRROR CA_BUNDLE
# Called by `python -m flyte_infra.devbox up` (flyte_infra/devbox/docker.py) when its cache has no
# tarball for the current key. Needs root (debootstrap, chroot, mount). Talks only to the mirrors.
set -euo pipefail
out=$1 mirror=$2 security=$3 ca_bundle=$4
suite=bookworm
packages=python3,python3-venv,ca-certificates
image_ca=/etc/ssl/certs/ca-certificates.crt

build=$(mktemp -d "${TMPDIR:-/var/tmp}/flyte-infra-rootfs.XXXXXX")
root=$build/root
cleanup() {
    local m
    for m in proc dev/pts dev sys; do
        if mountpoint -q "$root/$m" 2>/dev/null; then umount -l "$root/$m"; fi
    done
    rm -rf --one-file-system "$build"
}
trap cleanup EXIT

debootstrap --variant=minbase --components=main --include="$packages" "$suite" "$root" "$mirror"
mount -t proc proc "$root/proc"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
# No docs, man pages or locales, for packages installed later too.
cat >"$root/etc/dpkg/dpkg.cfg.d/01-flyte-infra-nodoc" <<'NODOC'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
NODOC
cat >"$root/etc/apt/apt.conf.d/01-flyte-infra" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
in_root sh -ec 'apt-get update; apt-get -y -o Dpkg::Options::=--force-confold dist-upgrade; apt-get clean'

# The network's CA, for every TLS client in the image; also where update-ca-certificates keeps it.
install -m 0644 "$ca_bundle" "$root$image_ca"
install -m 0644 "$ca_bundle" "$root/usr/local/share/ca-certificates/flyte-infra-host-bundle.crt"

# The worker user (uid 1000) and a venv. The venv stays root-owned: images install into it as root
# and the worker may not change what it runs.
in_root sh -ec '
    groupadd --gid 1000 flyte
    useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash flyte
    python3 -m venv /opt/venv
    /opt/venv/bin/python -c "import ssl, venv, ensurepip, sys; print(sys.version)"'

# No setuid or setgid programs: nothing in a worker may gain privileges.
find "$root" -xdev -type f -perm /6000 -exec chmod ug-s {} +
rm -f "$root/usr/sbin/policy-rc.d"
umount -l "$root/proc"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/dpkg/*-old "$root"/var/log/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/lintian/* "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.cache
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
: >"$root/etc/resolv.conf"
echo localhost >"$root/etc/hostname"
rm -f "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"

mkdir -p "$(dirname "$out")"
tar --numeric-owner --xattrs -C "$root" -cf - . | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
