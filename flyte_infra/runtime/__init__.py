"""Runtime: how tasks run, locally and deployed.

Routing (in-process and worker routers side by side), the JSON codec of arguments and results,
the HTTP client and the worker server (`python -m flyte_infra.runtime.worker`), and in-process
runs (`flyte_infra.run`). Modules here import model types only for typing. Internal: the public
API is `flyte_infra` and `flyte_infra.errors`.
"""
