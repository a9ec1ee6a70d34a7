"""Pulumi program of this project: deploys the environment module named by `flyte-infra:module`."""

from flyte_infra.pulumi import main

main()
