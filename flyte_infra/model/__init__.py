"""Model: what users write — TaskEnvironment, Task, Resources — validated at construction, no I/O.

Internal layout; import these from `flyte_infra`, the public API.
"""
