#!/usr/bin/env bash
# Install flyte-infra with its test and Pulumi dependencies, and Graphviz for `flyte-infra graph`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
if ! command -v dot >/dev/null 2>&1; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null
fi
