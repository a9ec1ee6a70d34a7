"""The docker-CLI adapter: `flyte-infra build` builds and pushes images without the Pulumi engine.

Internal: the public API is `flyte_infra` and `flyte_infra.errors`.
"""
