#!/usr/bin/env bash
# The main job on the bundled example (examples/ml_pipeline.py), for a stage (default dev):
#   dev:              build every environment's image on the project's dockerd, push it to the local
#                     registry, and render the Kubernetes manifests pinned by those digests;
#   staging | prod:   render the previous stage's digests, checked against today's specs (no build).
# With a Pulumi CLI and its plugins installed, `flyte-infra up --stack dev` does the same through the
# Pulumi engine. Output: .flyte-infra/images-<stage>.json and .flyte-infra/rendered/<stage>/.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-dev}
case $stage in
  dev) previous= ;;
  staging) previous=dev ;;
  prod) previous=staging ;;
  *) echo "usage: scripts/deploy.sh [dev|staging|prod]" >&2; exit 2 ;;
esac
bash scripts/install.sh
module=examples/ml_pipeline.py
mkdir -p .flyte-infra
flyte-infra check "$module"
flyte-infra plan "$module"
if [[ -z $previous ]]; then
  bash scripts/services.sh up
  eval "$(bash scripts/services.sh env)"
  flyte-infra build "$module" --stack dev -o .flyte-infra/images-dev.json
else
  [[ -f .flyte-infra/images-$previous.json ]] || { echo "deploy $previous first: scripts/deploy.sh $previous" >&2; exit 1; }
  cp ".flyte-infra/images-$previous.json" ".flyte-infra/images-$stage.json"
fi
flyte-infra render "$module" --stack "$stage" --images ".flyte-infra/images-$stage.json" -o ".flyte-infra/rendered/$stage"
flyte-infra graph "$module" -o ".flyte-infra/rendered/$stage/environments.svg"
