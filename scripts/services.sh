#!/usr/bin/env bash
# The devbox's local services: dockerd, registry, base image and the Kubernetes cluster.
#   scripts/services.sh [up|down|status|verify|env|toolchain] [docker|cluster|all]
# The work is done by flyte_infra/devbox (Python, supervised by supervisord); see its docstring.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m flyte_infra.devbox "${1:-up}" "${@:2}"
