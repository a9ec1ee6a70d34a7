"""Deploy planning, pure: the environment graph, package coverage, preflight, the plan, stack
settings and promotion. No I/O beyond reading a stack file; no Pulumi, no docker.

Internal: the public API is `flyte_infra` and `flyte_infra.errors`.
"""
