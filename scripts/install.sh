#!/usr/bin/env bash
# Install flyte-infra with its test, Pulumi and devbox dependencies, plus Graphviz (for
# `flyte-infra graph`) and shellcheck (CI lints the scripts). The services themselves are installed
# and started by `python3 -m flyte_infra.devbox up` (scripts/services.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
if ((${#missing[@]})); then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
