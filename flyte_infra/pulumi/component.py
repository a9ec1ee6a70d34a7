"""The `flyte-infra:index:TaskEnvironment` component: one environment's image and Kubernetes objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker as docker

__all__ = [
    "TYPE_TOKEN",
    "ImageBuildArgs",
    "KubernetesObject",
    "TaskEnvironmentArgs",
    "TaskEnvironmentComponent",
]

TYPE_TOKEN = "flyte-infra:index:TaskEnvironment"


@dataclass(frozen=True)
class ImageBuildArgs:
    """An image to build from a context directory and push under `tag_ref` (registry/repo:tag)."""

    context_dir: Path
    tag_ref: str
    registry: str
    registry_username: pulumi.Input[str] | None = None
    registry_password: pulumi.Input[str] | None = None
    network: str = "none"
    """The build's network: none (package layers install from wheels in the context)."""


@dataclass(frozen=True)
class TaskEnvironmentArgs:
    """Flat inputs of one environment: where its image comes from, and its manifests.

    Exactly one of `build` (build and push here) and `image_ref` (an image built elsewhere: by an
    environment with an identical spec, or by the previous stage) is set. `manifests` are the pure
    builder's objects; their worker container's image is replaced by the digest reference.
    """

    namespace: str
    service_dns: str
    manifests: list[dict[str, Any]]
    build: ImageBuildArgs | None = None
    image_ref: pulumi.Input[str] | None = None
    provider: pulumi.ProviderResource | None = field(default=None)
    ready_timeout: int | None = None
    """Seconds a Deployment may take to become Available before the update fails."""


class KubernetesObject(pulumi.CustomResource):
    """Any Kubernetes object, registered from its manifest as the typed SDK classes register it.

    The pulumi-kubernetes provider receives the same camelCase properties under the same type token
    (`kubernetes:apps/v1:Deployment`), so the manifests deployed are exactly those `render` writes.
    """

    def __init__(
        self, name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        api_version = manifest["apiVersion"]
        group_version = api_version if "/" in api_version else f"core/{api_version}"
        super().__init__(f"kubernetes:{group_version}:{manifest['kind']}", name, dict(manifest), opts)


class TaskEnvironmentComponent(pulumi.ComponentResource):
    """An environment deployed: its image (built or promoted) and its Kubernetes objects."""

    image_ref: pulumi.Output[str]
    """The image reference with its digest (`registry/repo:tag@sha256:...`)."""
    service_dns: pulumi.Output[str]
    namespace: pulumi.Output[str]

    def __init__(
        self, name: str, args: TaskEnvironmentArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        children = pulumi.ResourceOptions(parent=self)
        if args.build is not None:
            self.image_ref = self._build_image(name, args.build, children)
        elif args.image_ref is not None:
            self.image_ref = pulumi.Output.from_input(args.image_ref)
        else:
            raise ValueError(f"environment '{name}': neither an image to build nor an image reference")
        objects = pulumi.ResourceOptions(parent=self, provider=args.provider)
        timeout = f"{args.ready_timeout}s" if args.ready_timeout else None
        workloads = pulumi.ResourceOptions.merge(
            objects,
            pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout)),
        )
        for manifest in args.manifests:
            KubernetesObject(
                f"{name}-{manifest['kind'].lower()}",
                _with_image(manifest, self.image_ref),
                workloads if manifest["kind"] == "Deployment" else objects,
            )
        self.service_dns = pulumi.Output.from_input(args.service_dns)
        self.namespace = pulumi.Output.from_input(args.namespace)
        self.register_outputs(
            {"imageRef": self.image_ref, "serviceDns": self.service_dns, "namespace": self.namespace}
        )

    @staticmethod
    def _build_image(name: str, build: ImageBuildArgs, opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
        """Build on the local dockerd (BuildKit, no network), push, and answer `name:tag@digest`.

        pulumi-docker's `Image` builds through the daemon, so it works offline; the newer
        docker-build provider boots a BuildKit container whose image would have to be pulled.
        Nothing is built on preview.
        """
        registry = None
        if build.registry_username is not None and build.registry_password is not None:
            registry = docker.RegistryArgs(
                server=build.registry,
                username=build.registry_username,
                password=pulumi.Output.secret(build.registry_password),
            )
        image = docker.Image(
            f"{name}-image",
            build=docker.DockerBuildArgs(
                context=str(build.context_dir),
                dockerfile=str(build.context_dir / "Dockerfile"),
                network=build.network,
                builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
            ),
            image_name=build.tag_ref,
            registry=registry,
            skip_push=False,
            build_on_preview=False,
            opts=opts,
        )
        return image.repo_digest.apply(lambda digest: f"{build.tag_ref}@{digest.rsplit('@', 1)[-1]}")


def _with_image(manifest: dict[str, Any], image_ref: pulumi.Output[str]) -> dict[str, Any]:
    """A copy of `manifest` whose workload containers run `image_ref`."""
    if manifest["kind"] != "Deployment":
        return manifest
    spec = manifest["spec"]
    pod = spec["template"]["spec"]
    containers = [{**container, "image": image_ref} for container in pod["containers"]]
    template = {**spec["template"], "spec": {**pod, "containers": containers}}
    return {**manifest, "spec": {**spec, "template": template}}
