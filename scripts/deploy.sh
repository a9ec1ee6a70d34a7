#!/usr/bin/env bash
# The main job on the bundled example (examples/ml_pipeline.py), through the Pulumi engine:
# check and plan it, bring up the devbox (dockerd, registry, cluster, toolchain), `flyte-infra up`
# the dev stack (build, push, deploy in dependency order), promote its digests to staging and prod
# (nothing rebuilt), and print each environment's image digest, node and readiness.
# The engine-free GitOps path stays: `flyte-infra build` then `flyte-infra render --images`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
module=examples/ml_pipeline.py
flyte-infra check "$module"
flyte-infra plan "$module"
python3 -m flyte_infra.devbox up all
eval "$(python3 -m flyte_infra.devbox env)"
eval "$(python3 -m flyte_infra.devbox toolchain)"
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE:-flyte-infra-devbox}
flyte-infra up --stack dev
flyte-infra promote --from dev --to staging
flyte-infra promote --from staging --to prod
flyte-infra status --stack dev
