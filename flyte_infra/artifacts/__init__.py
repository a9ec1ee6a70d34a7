"""Artifacts: what a deployment is made of, as data and files — Dockerfiles and build contexts,
Kubernetes manifests, `flyte-infra render` output, and the environment diagram.

Internal: the public API is `flyte_infra` and `flyte_infra.errors`.
"""
