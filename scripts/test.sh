#!/usr/bin/env bash
# Run every test: installs what they need, starts the project's dockerd and registry, then pytest.
# Tests that need a part this machine cannot run (the Pulumi CLI with its plugins) skip with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/services.sh up || echo "warning: scripts/services.sh up failed; docker tests will skip" >&2
exec python3 -m pytest "$@"
