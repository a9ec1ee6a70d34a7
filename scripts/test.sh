#!/usr/bin/env bash
# Run every test. Installs what they need and brings up the real parts first: dockerd, the
# registry and base image, the Kubernetes cluster (etcd, apiserver, controller-manager, scheduler,
# kwok) and the Pulumi toolchain, each built into ~/.cache/flyte-infra on first use (about 35 min
# cold on 2 cores, seconds when cached). Nothing is skipped for want of a service. Then the fast
# tests run on each other CPython from 3.11 found here (pyenv's), in venvs kept in the same cache.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
shellcheck scripts/*.sh .ci/run
python3 -m flyte_infra.devbox up all
python3 -m flyte_infra.devbox toolchain >/dev/null
python3 -m pytest "$@"
# The fast tests again on every other CPython 3.11+ this machine has: preflight reads bytecode,
# whose shape changes between versions.
for python in $(python3 -m flyte_infra.devbox pythons); do
  "$python" -m pytest -m "not docker and not engine and not cluster" -p no:cacheprovider "$@"
done
