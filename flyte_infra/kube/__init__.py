"""Reading a deployed stack back from its cluster (the official Kubernetes client): why an
environment is not Available, and where each one runs. Internal; used by the CLI and the
Pulumi automation, never by the pure core."""
