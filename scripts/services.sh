#!/usr/bin/env bash
# Local services for flyte-infra: a private dockerd, a loopback registry and
# the Python base image that generated Dockerfiles build FROM.
#
#   scripts/services.sh [up]    install (if missing) and start everything; idempotent
#   scripts/services.sh env     print the shell exports that point tools at it
#   scripts/services.sh status  show what runs and what is present
#   scripts/services.sh verify  build/run/push a tiny image (classic and BuildKit)
#   scripts/services.sh down    stop the registry and dockerd
#
# Runs as root on Debian bookworm. Nothing here talks to anything but loopback
# and the Debian mirror configured for apt; dockerd never creates bridges or
# iptables rules, so containers and builds use --network host.
#
# Environment (all optional):
#   FLYTE_INFRA_RUN            run dir: socket, pidfiles, logs  (/run/flyte-infra)
#   FLYTE_INFRA_STATE          data dir: docker data, registry  (/var/lib/flyte-infra)
#   FLYTE_INFRA_REGISTRY_PORT  registry port on 127.0.0.1       (5000)
#   FLYTE_INFRA_CA_BUNDLE      CA bundle baked into the image   (/etc/ssl/certs/ca-certificates.crt)
#   FLYTE_INFRA_DEBIAN_MIRROR  mirror for debootstrap           (apt's bookworm URI)
#   FLYTE_INFRA_VERIFY=1       run `verify` at the end of `up` even when nothing was built
#   XDG_CACHE_HOME             rootfs tarball cache: $XDG_CACHE_HOME/flyte-infra/base
set -Eeuo pipefail
trap 'printf "error: services.sh line %s: %s failed (exit %s)\n" "$LINENO" "$BASH_COMMAND" "$?" >&2' ERR

RUN_DIR=${FLYTE_INFRA_RUN:-/run/flyte-infra}
STATE_DIR=${FLYTE_INFRA_STATE:-/var/lib/flyte-infra}
REGISTRY_PORT=${FLYTE_INFRA_REGISTRY_PORT:-5000}
REGISTRY_ADDR=127.0.0.1:${REGISTRY_PORT}
CLOSED_PROXY=http://127.0.0.1:9 # discard port, nothing listens: see start_dockerd
CACHE_DIR=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/flyte-infra/base
CA_BUNDLE=${FLYTE_INFRA_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

DOCKER_SOCK=$RUN_DIR/docker.sock
DOCKER_URI=unix://$DOCKER_SOCK
DOCKERD=/usr/sbin/dockerd
DOCKERD_PID=$RUN_DIR/dockerd.pid
REGISTRY_BIN=/usr/bin/docker-registry
REGISTRY_PID=$RUN_DIR/registry.pid
REGISTRY_CONFIG=$RUN_DIR/registry.yml
LOG_DIR=$RUN_DIR/logs

SUITE=bookworm
BASE_REPO=flyte-infra/python
BASE_TAG=3.11-bookworm
BASE_IMAGE=$BASE_REPO:$BASE_TAG
BASE_IMAGE_REMOTE=$REGISTRY_ADDR/$BASE_IMAGE
BASE_KEY_LABEL=org.flyte-infra.base-key
IMAGE_CA=/etc/ssl/certs/ca-certificates.crt
BASE_PACKAGES=python3,python3-venv,ca-certificates
HOST_PACKAGES=(docker.io docker-registry debootstrap containerd runc tini iproute2 curl ca-certificates)

T_START=$EPOCHREALTIME
BUILD_ROOT=""

# ---------------------------------------------------------------- helpers ---

elapsed() { # seconds since $1 (an EPOCHREALTIME), one decimal
    local now=${EPOCHREALTIME/./} then=${1/./}
    local d=$(((now - then) / 100000))
    printf '%d.%ds' $((d / 10)) $((d % 10))
}
say() { printf '==> %s\n' "$*"; }
step() { printf '==> %-10s %s [%s]\n' "$1" "$2" "$(elapsed "$3")"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}
log_tail() { # file: last lines of a log, to stderr
    [[ -f $1 ]] || return 0
    printf -- '--- last lines of %s ---\n' "$1" >&2
    tail -n 25 "$1" >&2
}
dk() { docker -H "$DOCKER_URI" "$@"; }

pid_alive() { # pidfile -> 0 when it names a live process
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}
dockerd_up() { dk info >/dev/null 2>&1; }
dockerd_guarded() { [[ $(dk info --format '{{.HTTPSProxy}}' 2>/dev/null) == "$CLOSED_PROXY" ]]; }
registry_up() { curl -fsS -m 2 -o /dev/null "http://$REGISTRY_ADDR/v2/" 2>/dev/null; }

wait_for() { # timeout-seconds what log-file command...
    local timeout=$1 what=$2 log=$3 i
    shift 3
    for ((i = 0; i < timeout * 5; i++)); do
        "$@" && return 0
        sleep 0.2
    done
    log_tail "$log"
    die "$what did not answer within ${timeout}s (log: $log)"
}

need_root() { [[ $(id -u) == 0 ]] || die "run as root (needs apt-get, dockerd, debootstrap)"; }

lock() { # one `up`/`down` at a time
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/services.lock"
    flock -n 9 && return
    say "lock       waiting for another services.sh ($RUN_DIR/services.lock)"
    flock -w 900 9 || die "another services.sh holds $RUN_DIR/services.lock"
}

# ------------------------------------------------------------ 1: packages ---

ensure_packages() {
    local t=$EPOCHREALTIME missing=() p log=$LOG_DIR/apt.log
    for p in "${HOST_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        step packages "all present" "$t"
        return
    fi
    say "packages   installing: ${missing[*]} (log: $log)"
    # Keep package maintainer scripts from starting the system docker/containerd/
    # registry services (and so from touching /var/run/docker.sock).
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    local rc=0
    {
        apt-get update &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    } >"$log" 2>&1 || rc=$?
    ((made_policy)) && rm -f "$policy"
    if ((rc != 0)); then
        log_tail "$log"
        die "apt-get failed (log: $log)"
    fi
    step packages "installed ${missing[*]}" "$t"
}

# ------------------------------------------------------------- 2: dockerd ---

start_dockerd() {
    local t=$EPOCHREALTIME log=$LOG_DIR/dockerd.log
    if dockerd_up && dockerd_guarded; then
        step dockerd "already answering on $DOCKER_URI" "$t"
        return
    fi
    if dockerd_up; then # started before the guard existed: restart it with the guard
        say "dockerd    running without the loopback-only proxy guard; restarting it"
        stop_pid dockerd "$DOCKERD_PID" 30
    fi
    [[ -x $DOCKERD ]] || die "$DOCKERD missing (package docker.io)"
    if pid_alive "$DOCKERD_PID"; then
        say "dockerd    pid $(<"$DOCKERD_PID") exists but does not answer yet; waiting"
    else
        rm -f "$DOCKERD_PID"
        mkdir -p "$STATE_DIR/docker" "$RUN_DIR/docker-exec"
        # Own (empty) config file so a host /etc/docker/daemon.json cannot
        # add listeners or conflict with these flags.
        [[ -f $RUN_DIR/daemon.json ]] || echo '{}' >"$RUN_DIR/daemon.json"
        # The daemon itself only ever talks to the loopback registry: any other
        # registry (a pull of docker.io/..., e.g. a builder image) goes to a proxy
        # on a closed loopback port and fails at once, with no DNS lookup.
        # Build steps do not inherit these, so pip in a build is unaffected.
        HTTP_PROXY=$CLOSED_PROXY HTTPS_PROXY=$CLOSED_PROXY NO_PROXY=127.0.0.1,localhost,::1 \
        setsid "$DOCKERD" \
            --config-file "$RUN_DIR/daemon.json" \
            --host "$DOCKER_URI" \
            --data-root "$STATE_DIR/docker" \
            --exec-root "$RUN_DIR/docker-exec" \
            --pidfile "$DOCKERD_PID" \
            --containerd-namespace flyte-infra \
            --containerd-plugins-namespace flyte-infra-plugins \
            --bridge=none --iptables=false --ip6tables=false \
            --ip-forward=false --ip-masq=false \
            </dev/null >>"$log" 2>&1 9>&- &
    fi
    wait_for 60 dockerd "$log" dockerd_up
    step dockerd "started on $DOCKER_URI (pid $(cat "$DOCKERD_PID" 2>/dev/null || echo '?'), log $log)" "$t"
}

# ------------------------------------------------------------ 3: registry ---

write_registry_config() {
    mkdir -p "$STATE_DIR/registry"
    cat >"$REGISTRY_CONFIG" <<EOF
# written by scripts/services.sh; regenerated on every start
version: 0.1
log:
  level: info
  fields:
    service: flyte-infra-registry
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REGISTRY_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
EOF
}

start_registry() {
    local t=$EPOCHREALTIME log=$LOG_DIR/registry.log
    if registry_up; then
        if pid_alive "$REGISTRY_PID"; then
            step registry "already answering on http://$REGISTRY_ADDR" "$t"
        else
            step registry "http://$REGISTRY_ADDR answers but was not started here (no live $REGISTRY_PID); using it" "$t"
        fi
        return
    fi
    [[ -x $REGISTRY_BIN ]] || die "$REGISTRY_BIN missing (package docker-registry)"
    if pid_alive "$REGISTRY_PID"; then
        kill "$(<"$REGISTRY_PID")" 2>/dev/null || true
        sleep 0.5
    fi
    write_registry_config
    setsid "$REGISTRY_BIN" serve "$REGISTRY_CONFIG" </dev/null >>"$log" 2>&1 9>&- &
    echo $! >"$REGISTRY_PID"
    wait_for 30 registry "$log" registry_up
    step registry "started on http://$REGISTRY_ADDR (pid $(<"$REGISTRY_PID"), log $log)" "$t"
}

# ---------------------------------------------------------- 4: base image ---

debian_uri() { # suite -> first deb URI that apt uses for it
    local suite=$1 f uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        uri=$(awk -v s="$suite" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; enabled = "yes"
                for (i = 1; i <= NF; i++) {
                    l = $i
                    if (l ~ /^[ \t]*#/) continue
                    if (match(l, /^[A-Za-z-]+:/)) {
                        k = tolower(substr(l, 1, RLENGTH - 1)); v = substr(l, RLENGTH + 1)
                        gsub(/^[ \t]+|[ \t]+$/, "", v)
                        if (k == "types") types = v
                        else if (k == "uris") uris = v
                        else if (k == "suites") suites = v
                        else if (k == "enabled") enabled = tolower(v)
                    }
                }
                if (enabled == "no" || (" " types " ") !~ / deb /) next
                if ((" " suites " ") ~ (" " s " ")) { split(uris, u, " "); print u[1]; exit }
            }' "$f")
        [[ -n $uri ]] && break
    done
    if [[ -z $uri ]]; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [[ -f $f ]] || continue
            uri=$(awk -v s="$suite" '
                $1 == "deb" {
                    i = 2
                    if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == s) { print $i; exit }
                }' "$f")
            [[ -n $uri ]] && break
        done
    fi
    printf '%s\n' "${uri%/}"
}

base_mirror() {
    local m=${FLYTE_INFRA_DEBIAN_MIRROR:-$(debian_uri "$SUITE")}
    printf '%s\n' "${m:-http://deb.debian.org/debian}"
}
security_mirror() {
    local m
    m=$(debian_uri "$SUITE-security")
    printf '%s\n' "${m:-http://deb.debian.org/debian-security}"
}

# Everything that decides the image's content goes into its key: the recipe
# (these function bodies), mirrors, architecture and the CA bundle. A changed
# key means a new tarball and a new image; the old tarballs are removed.
base_key() {
    {
        declare -f build_rootfs import_base
        printf '%s\n' "$SUITE" "$BASE_PACKAGES" "$(base_mirror)" "$(security_mirror)" "$(dpkg --print-architecture)"
        sha256sum <"$CA_BUNDLE"
    } | sha256sum | cut -c1-16
}

cleanup_build() {
    [[ -n $BUILD_ROOT ]] || return 0
    local m
    for m in proc dev/pts dev sys; do
        mountpoint -q "$BUILD_ROOT/root/$m" 2>/dev/null && umount -l "$BUILD_ROOT/root/$m"
    done
    rm -rf --one-file-system "$BUILD_ROOT"
    BUILD_ROOT=""
}
trap cleanup_build EXIT

build_rootfs() { # tarball-path
    local out=$1 log=$LOG_DIR/base-build.log mirror security r
    mirror=$(base_mirror)
    security=$(security_mirror)
    mkdir -p "$STATE_DIR" "$(dirname "$out")"
    BUILD_ROOT=$(mktemp -d "$STATE_DIR/base-build.XXXXXX")
    r=$BUILD_ROOT/root
    : >"$log"
    say "base       debootstrap --variant=minbase $SUITE from $mirror (log: $log)"
    debootstrap --variant=minbase --components=main --include="$BASE_PACKAGES" \
        "$SUITE" "$r" "$mirror" >>"$log" 2>&1 || {
        log_tail "$log"
        die "debootstrap failed (log: $log)"
    }
    mount -t proc proc "$r/proc"
    printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"

    # apt sources as in the host (updates and security too), then upgrade.
    rm -f "$r/etc/apt/sources.list"
    cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # No docs, man pages or locales for packages installed later either.
    cat >"$r/etc/dpkg/dpkg.cfg.d/01-flyte-infra-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    cat >"$r/etc/apt/apt.conf.d/01-flyte-infra" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    say "base       apt-get upgrade (updates + security) in the rootfs"
    {
        chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
            sh -ec 'apt-get update; apt-get -y -o Dpkg::Options::=--force-confold dist-upgrade; apt-get clean'
    } >>"$log" 2>&1 || {
        log_tail "$log"
        die "apt-get upgrade in the rootfs failed (log: $log)"
    }

    # The network's CA: every TLS client in the image (pip, requests, curl,
    # openssl) must trust it. Also kept in /usr/local/share/ca-certificates so
    # that a later update-ca-certificates in a Dockerfile keeps it.
    install -m 0644 "$CA_BUNDLE" "$r$IMAGE_CA"
    install -m 0644 "$CA_BUNDLE" "$r/usr/local/share/ca-certificates/flyte-infra-host-bundle.crt"

    # Non-root user and a venv it owns (so USER 1000 can run and extend it).
    {
        chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -ec '
            groupadd --gid 1000 flyte
            useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash flyte
            python3 -m venv /opt/venv
            /opt/venv/bin/python -c "import ssl, venv, ensurepip, sys; print(sys.version)"
            chown -R 1000:1000 /opt/venv'
    } >>"$log" 2>&1 || {
        log_tail "$log"
        die "user/venv setup in the rootfs failed (log: $log)"
    }

    # Slim down.
    rm -f "$r/usr/sbin/policy-rc.d"
    umount -l "$r/proc"
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old \
        "$r"/var/lib/dpkg/*-old "$r"/var/log/* "$r"/usr/share/man/* "$r"/usr/share/info/* \
        "$r"/usr/share/lintian/* "$r"/tmp/* "$r"/var/tmp/* "$r"/root/.cache
    find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
    : >"$r/etc/resolv.conf"
    echo localhost >"$r/etc/hostname"
    rm -f "$r/etc/machine-id" "$r/var/lib/dbus/machine-id"

    tar --numeric-owner --xattrs -C "$r" -cf - . | gzip -1 >"$out.tmp"
    mv "$out.tmp" "$out"
    cleanup_build
}

import_base() { # tarball key
    local log=$LOG_DIR/base-import.log
    local envs=(
        "PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        "VIRTUAL_ENV=/opt/venv"
        "LANG=C.UTF-8"
        "PYTHONUNBUFFERED=1"
        "PIP_DISABLE_PIP_VERSION_CHECK=1"
        "PIP_CERT=$IMAGE_CA"
        "SSL_CERT_FILE=$IMAGE_CA"
        "REQUESTS_CA_BUNDLE=$IMAGE_CA"
    )
    local changes=() e
    for e in "${envs[@]}"; do changes+=(--change "ENV $e"); done
    # USER stays root: Dockerfiles FROM this image pip install as root and then
    # switch to USER 1000 (flyte) themselves.
    changes+=(--change "LABEL $BASE_KEY_LABEL=$2"
        --change "LABEL org.opencontainers.image.title=$BASE_IMAGE"
        --change 'CMD ["python3"]')
    dk import "${changes[@]}" "$1" "$BASE_IMAGE" >"$log" 2>&1 || {
        log_tail "$log"
        die "docker import failed (log: $log)"
    }
}

ensure_base_image() { # sets BASE_CHANGED=1 when it (re)imported
    local t=$EPOCHREALTIME key tarball have
    BASE_CHANGED=0
    [[ -s $CA_BUNDLE ]] || die "CA bundle $CA_BUNDLE missing"
    key=$(base_key)
    tarball=$CACHE_DIR/python-$BASE_TAG-$key.tar.gz
    have=$(dk image inspect -f "{{ index .Config.Labels \"$BASE_KEY_LABEL\" }}" "$BASE_IMAGE" 2>/dev/null || true)
    if [[ $have == "$key" ]]; then
        step base "$BASE_IMAGE present (key $key)" "$t"
    else
        if [[ -s $tarball ]]; then
            say "base       importing cached rootfs $tarball"
        else
            build_rootfs "$tarball"
            step base "rootfs built: $tarball ($(du -h "$tarball" | cut -f1))" "$t"
        fi
        find "$CACHE_DIR" -maxdepth 1 -name "python-$BASE_TAG-*.tar.gz" ! -name "$(basename "$tarball")" -delete
        import_base "$tarball" "$key"
        BASE_CHANGED=1
        step base "imported $BASE_IMAGE ($(dk image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))" "$t"
    fi
    push_base
}

registry_digest() { # repo tag -> manifest digest in the registry, or nothing
    curl -fsS -m 5 -o /dev/null -D - \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        "http://$REGISTRY_ADDR/v2/$1/manifests/$2" 2>/dev/null |
        awk -F': ' 'tolower($1) == "docker-content-digest" { gsub(/\r/, "", $2); print $2 }' || true
}

push_base() {
    local t=$EPOCHREALTIME log=$LOG_DIR/base-push.log remote local_digests
    remote=$(registry_digest "$BASE_REPO" "$BASE_TAG")
    local_digests=$(dk image inspect -f '{{ join .RepoDigests " " }}' "$BASE_IMAGE" 2>/dev/null || true)
    if [[ -n $remote && " $local_digests " == *" $REGISTRY_ADDR/$BASE_REPO@$remote "* ]]; then
        step push "$BASE_IMAGE_REMOTE up to date ($remote)" "$t"
        return
    fi
    dk tag "$BASE_IMAGE" "$BASE_IMAGE_REMOTE"
    dk push "$BASE_IMAGE_REMOTE" >"$log" 2>&1 || {
        log_tail "$log"
        die "docker push $BASE_IMAGE_REMOTE failed (log: $log)"
    }
    step push "pushed $BASE_IMAGE_REMOTE ($(registry_digest "$BASE_REPO" "$BASE_TAG"))" "$t"
}

# -------------------------------------------------------------- 5: verify ---

# The BuildKit path: a docker CLI with the buildx plugin, else Debian's own
# 20.10 client (/usr/bin/docker) whose built-in BuildKit client talks to the
# daemon's embedded BuildKit. The 28.x client at /usr/local/bin has no buildx
# plugin here and refuses DOCKER_BUILDKIT=1 without it.
buildkit_client() {
    if docker buildx version >/dev/null 2>&1; then
        command -v docker
    elif [[ -x /usr/bin/docker ]]; then
        echo /usr/bin/docker
    fi
}

cmd_verify() {
    local t=$EPOCHREALTIME ctx log=$LOG_DIR/verify.log bk rc=0 tt
    local img=flyte-infra/selftest remote=$REGISTRY_ADDR/flyte-infra/selftest
    dockerd_up || die "dockerd is not running: scripts/services.sh up"
    registry_up || die "registry is not running: scripts/services.sh up"
    dockerd_guarded || die "dockerd runs without the loopback-only proxy guard: scripts/services.sh up"
    mkdir -p "$LOG_DIR"
    ctx=$(mktemp -d)
    : >"$log"
    fail() {
        rc=1
        say "verify     FAILED $* (log: $log)"
    }
    # 1. classic builder: FROM the local base, pip install through the CA
    #    bundle, run as uid 1000, push to the registry, then forget it locally.
    cat >"$ctx/Dockerfile" <<EOD
FROM $BASE_IMAGE
RUN pip install --no-cache-dir six
USER 1000
RUN python -c "import six, sys; print('six', six.__version__, sys.prefix)"
EOD
    tt=$EPOCHREALTIME
    if DOCKER_BUILDKIT=0 dk build --network host -t "$img:classic" "$ctx" >>"$log" 2>&1 &&
        dk run --rm --network host "$img:classic" python -c 'import os, six; print(os.getuid(), six.__version__)' >>"$log" 2>&1; then
        step verify "classic builder: FROM $BASE_IMAGE, pip install six, run as uid 1000: ok" "$tt"
    else
        fail "classic build/run"
    fi
    tt=$EPOCHREALTIME
    if dk tag "$img:classic" "$remote:classic" >>"$log" 2>&1 && dk push "$remote:classic" >>"$log" 2>&1; then
        step verify "push $remote:classic: ok" "$tt"
    else
        fail "push to $REGISTRY_ADDR"
    fi
    dk rmi "$img:classic" "$remote:classic" >>"$log" 2>&1 || true

    # 2. BuildKit (the daemon's embedded one, as pulumi-docker-build's docker
    #    driver uses it): FROM the local base, then FROM the registry (plain
    #    http on loopback) for an image that is no longer local.
    bk=$(buildkit_client)
    if [[ -z $bk ]]; then
        say "verify     BuildKit: no docker client with BuildKit found; skipped"
    else
        buildkit_check() { # TAG WHAT: build $ctx as $img:TAG with BuildKit
            tt=$EPOCHREALTIME
            if DOCKER_BUILDKIT=1 "$bk" -H "$DOCKER_URI" build --progress plain --network host \
                -t "$img:$1" "$ctx" >>"$log" 2>&1; then
                step verify "BuildKit via $bk: $2: ok" "$tt"
            else
                fail "BuildKit via $bk: $2"
            fi
        }
        sed -i '2s/six$/six  # buildkit/' "$ctx/Dockerfile"
        buildkit_check buildkit "FROM $BASE_IMAGE (local store, no pull), pip install"
        printf 'FROM %s\nRUN python -c "import six"\n' "$remote:classic" >"$ctx/Dockerfile"
        buildkit_check from-registry "FROM $remote:classic pulled over http"
        unset -f buildkit_check
    fi
    dk rmi "$img:buildkit" "$img:from-registry" >>"$log" 2>&1 || true
    unset -f fail
    rm -rf "$ctx"
    if ((rc != 0)); then
        log_tail "$log"
        die "verify failed (log: $log)"
    fi
    step verify "all checks passed" "$t"
}

# ------------------------------------------------------------ subcommands ---

cmd_up() {
    need_root
    mkdir -p "$RUN_DIR" "$LOG_DIR" "$STATE_DIR"
    lock
    ensure_packages
    start_dockerd
    start_registry
    ensure_base_image
    if ((BASE_CHANGED)) || [[ ${FLYTE_INFRA_VERIFY:-0} == 1 ]]; then
        cmd_verify
    fi
    say "up         done in $(elapsed "$T_START"); for your shell: eval \"\$($0 env)\""
}

cmd_env() {
    printf 'export DOCKER_HOST=%s\n' "$DOCKER_URI"
    printf 'export FLYTE_INFRA_REGISTRY=%s\n' "$REGISTRY_ADDR"
    printf 'export FLYTE_INFRA_BASE_IMAGE=%s\n' "$BASE_IMAGE_REMOTE"
}

stop_pid() { # name pidfile timeout
    local name=$1 pidfile=$2 timeout=$3 pid i
    if ! pid_alive "$pidfile"; then
        rm -f "$pidfile"
        say "down       $name not running"
        return
    fi
    pid=$(<"$pidfile")
    kill -TERM "$pid"
    for ((i = 0; i < timeout * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "down       $name (pid $pid) ignored TERM for ${timeout}s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    say "down       $name stopped (pid $pid)"
}

cmd_down() {
    need_root
    lock
    stop_pid registry "$REGISTRY_PID" 10
    stop_pid dockerd "$DOCKERD_PID" 30
    # dockerd leaves its netns bind mount (and after a crash, the data-root
    # bind mount) behind; drop them so the dirs can be removed.
    if ! pid_alive "$DOCKERD_PID"; then
        local m
        awk -v run="$RUN_DIR/docker-exec/" -v data="$STATE_DIR/docker" \
            'index($2, run) == 1 || $2 == data || index($2, data "/") == 1 { print $2 }' /proc/mounts |
            sort -r | while read -r m; do
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done
    fi
}

cmd_status() {
    local rc=0 id size key
    if dockerd_up; then
        say "dockerd    up on $DOCKER_URI (pid $(cat "$DOCKERD_PID" 2>/dev/null || echo '?'), server $(dk version -f '{{.Server.Version}}' 2>/dev/null))"
    else
        rc=1
        say "dockerd    down ($DOCKER_URI)"
    fi
    if registry_up; then
        say "registry   up on http://$REGISTRY_ADDR (pid $(cat "$REGISTRY_PID" 2>/dev/null || echo '?'))"
    else
        rc=1
        say "registry   down (http://$REGISTRY_ADDR)"
    fi
    if dockerd_up && id=$(dk image inspect -f '{{.Id}} {{.Size}} {{ index .Config.Labels "'"$BASE_KEY_LABEL"'" }}' "$BASE_IMAGE" 2>/dev/null); then
        read -r id size key <<<"$id"
        say "base       $BASE_IMAGE ${id:7:12} $((size / 1000000)) MB key $key"
    else
        rc=1
        say "base       $BASE_IMAGE not in dockerd"
    fi
    if registry_up; then
        local d
        d=$(registry_digest "$BASE_REPO" "$BASE_TAG")
        say "registry   $BASE_IMAGE_REMOTE ${d:-missing}"
        [[ -n $d ]] || rc=1
    fi
    local cached
    cached=$(find "$CACHE_DIR" -maxdepth 1 -name "python-$BASE_TAG-*.tar.gz" 2>/dev/null | head -n1)
    say "cache      ${cached:-no rootfs tarball in $CACHE_DIR}"
    return "$rc"
}

main() {
    local cmd=${1:-up}
    case $cmd in
    up) cmd_up ;;
    env) cmd_env ;;
    down) cmd_down ;;
    status) cmd_status || exit "$?" ;;
    verify) cmd_verify ;;
    -h | --help | help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown subcommand '$cmd' (up, env, status, verify, down)" ;;
    esac
}

main "$@"
