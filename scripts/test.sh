#!/usr/bin/env bash
# Run every test. Installs what they need and brings up the real parts first: dockerd, the
# registry and base image, the Kubernetes cluster (etcd, apiserver, controller-manager, scheduler,
# kwok) and the Pulumi toolchain, each built into ~/.cache/flyte-infra on first use (about 35 min
# cold on 2 cores, seconds when cached). Nothing is skipped for want of a service.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
shellcheck scripts/*.sh .ci/run
python3 -m flyte_infra.devbox up all
python3 -m flyte_infra.devbox toolchain >/dev/null
exec python3 -m pytest "$@"
