"""Packaging: one lock per connected DAG of environments, resolved with uv, and its wheels."""
