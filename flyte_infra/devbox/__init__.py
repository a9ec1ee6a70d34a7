"""The local devbox: every service flyte-infra's tests and main job need, on this machine.

- `toolchain`: the Pulumi CLI, its Python language host and the kubernetes and docker plugins,
  used when installed at the pinned versions, else built from `../shared/third_party` plus the Go
  module proxy into the user's cache dir.
- `docker`: a private dockerd (no bridge, no iptables), a loopback registry and a Python base image
  made with debootstrap, since no image can be pulled here.
- `cluster`: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on loopback, with
  fake CPU and GPU nodes on which pods become Running.

Long-running processes are supervised by supervisord; `python -m flyte_infra.devbox` (or
`scripts/services.sh`) has the subcommands `up`, `down`, `status`, `verify`, `env` and `toolchain`.
Nothing here is imported by the rest of flyte-infra.
"""
