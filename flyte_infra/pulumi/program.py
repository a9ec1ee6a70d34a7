"""The Pulumi program: preflight first, then one component per environment in dependency order."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes

from ..artifacts.dockerfile import image_spec, write_build_context
from ..artifacts.manifests import (
    environment_manifests,
    namespace_manifest,
    service_dns,
    token_secret_manifest,
)
from ..deploy.preflight import preflight
from ..deploy.promotion import promoted_ref
from ..deploy.settings import StackSettings
from ..errors import FlyteInfraError, StackConfigError
from ..loader import Program, load_program
from ..packaging.lock import Lock
from ..packaging.resolve import offline_mode, program_lock
from ..packaging.wheels import write_wheels
from .component import ImageBuildArgs, KubernetesObject, TaskEnvironmentArgs, TaskEnvironmentComponent

__all__ = ["CONFIG_NAMESPACE", "deploy", "main", "promoted_image_refs"]

CONFIG_NAMESPACE = "flyte-infra"
BUILD_DIR = Path(".flyte-infra") / "build"


def deploy(
    program: Program,
    settings: StackSettings,
    *,
    registry_username: pulumi.Input[str] | None = None,
    registry_password: pulumi.Input[str] | None = None,
    promoted: pulumi.Output[Mapping[str, str]] | None = None,
    worker_token: pulumi.Input[str] | None = None,
    lock: Lock | None = None,
) -> dict[str, TaskEnvironmentComponent]:
    """Register every environment of `program`; raises PreflightError before registering anything.

    With `promoted` (env -> image ref with digest, from the previous stage) no image is built.
    On a cluster, `worker_token` (the stack's `flyte-infra:workerToken` secret) becomes the
    namespace's token Secret, which every worker reads; in render mode no Secret is written, as
    with `flyte-infra render` (a token does not belong in files).
    """
    graph = preflight(program.environments).raise_for_errors()
    settings.check_environments(graph.environments)
    lock = lock if lock is not None else program_lock(program, offline=offline_mode())
    if not settings.render_dir and worker_token is None:
        raise StackConfigError(
            settings.stack,
            "flyte-infra:workerToken",
            "not set: workers authenticate calls with it (`flyte-infra up` sets one; or "
            "`pulumi config set --secret flyte-infra:workerToken $(openssl rand -hex 32)`)",
        )
    provider = _kubernetes_provider(settings)
    namespace = KubernetesObject(
        "namespace", namespace_manifest(settings), pulumi.ResourceOptions(provider=provider)
    )
    shared: list[pulumi.Resource] = [namespace]
    if not settings.render_dir:
        token = pulumi.Output.secret(worker_token)
        manifest = token_secret_manifest(settings, token)  # type: ignore[arg-type]
        shared.append(
            KubernetesObject(
                "worker-token", manifest, pulumi.ResourceOptions(provider=provider, depends_on=[namespace])
            )
        )
    components: dict[str, TaskEnvironmentComponent] = {}
    built: dict[str, pulumi.Output[str]] = {}  # spec tag -> image ref: identical specs build once
    for name in graph.order:
        environment = graph.environments[name]
        spec = image_spec(environment, program, settings, lock)
        build: ImageBuildArgs | None = None
        image_ref: pulumi.Output[str] | None = None
        if promoted is not None:
            source = f"stack '{settings.promote_from}'" if settings.promote_from else "flyte-infra:images"
            image_ref = promoted.apply(
                functools.partial(promoted_ref, name=name, tag=spec.tag, source=source)
            )
        elif spec.tag in built:
            image_ref = built[spec.tag]
        else:
            context_dir = write_build_context(spec, BUILD_DIR / spec.tag)
            if not pulumi.runtime.is_dry_run():  # preview builds nothing: no wheels to fetch
                write_wheels(spec.layers, context_dir)
            build = ImageBuildArgs(
                context_dir=context_dir,
                tag_ref=spec.image_name(settings),
                registry=settings.registry,
                registry_username=registry_username,
                registry_password=registry_password,
                network=spec.network,
            )
        args = TaskEnvironmentArgs(
            namespace=settings.namespace,
            service_dns=service_dns(name, settings),
            manifests=environment_manifests(environment, graph, settings, image_ref="<image>"),
            build=build,
            image_ref=image_ref,
            provider=provider,
            ready_timeout=settings.ready_timeout,
        )
        dependencies: list[pulumi.Resource] = list(shared)
        dependencies += [components[dependency] for dependency in graph.dependencies[name]]
        component = TaskEnvironmentComponent(name, args, pulumi.ResourceOptions(depends_on=dependencies))
        components[name] = component
        built.setdefault(spec.tag, component.image_ref)
    return components


def _kubernetes_provider(settings: StackSettings) -> kubernetes.Provider | None:
    """Render mode writes YAML to `renderDir`; else the cluster of `kubeconfig`, or the ambient one."""
    if settings.render_dir:
        return kubernetes.Provider("kubernetes", render_yaml_to_directory=settings.render_dir)
    if settings.kubeconfig:
        return kubernetes.Provider("kubernetes", kubeconfig=str(Path(settings.kubeconfig).expanduser()))
    return None


def promoted_image_refs(settings: StackSettings) -> pulumi.Output[Mapping[str, str]] | None:
    """The previous stage's `imageRefs` output (StackReference), or the `images` config map."""
    if settings.images:
        return pulumi.Output.from_input(dict(settings.images))
    if not settings.promote_from:
        return None
    source = settings.promote_from
    if source.count("/") != 2:
        organization = pulumi.get_organization() or "organization"  # the diy backends' name
        source = f"{organization}/{pulumi.get_project()}/{source}"
    reference = pulumi.StackReference(
        f"promote-from-{settings.promote_from.replace('/', '-')}", stack_name=source
    )
    return reference.get_output("imageRefs")


def read_settings(config: pulumi.Config, stack: str) -> StackSettings:
    """StackSettings from this stack's `flyte-infra:*` config (secrets stay Outputs, outside)."""
    values: dict[str, Any] = {}
    for key in StackSettings.config_keys():
        raw = config.get(key)
        if raw is None:
            continue
        try:
            values[key] = config.get_object(key)
        except Exception:  # a plain string that is not JSON
            values[key] = raw
    return StackSettings.from_config(values, stack=stack)


def main() -> None:
    """Entry point of `__main__.py`: load the module named in config and deploy it."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    try:
        settings = read_settings(config, pulumi.get_stack())
        program = load_program(settings.module)
        components = deploy(
            program,
            settings,
            registry_username=config.get("registryUsername"),
            registry_password=config.get_secret("registryPassword"),
            promoted=promoted_image_refs(settings),
            worker_token=config.get_secret("workerToken"),
        )
    except FlyteInfraError as error:
        raise pulumi.RunError(str(error)) from error
    image_refs = {name: component.image_ref for name, component in components.items()}
    pulumi.export("imageRefs", image_refs)
    pulumi.export(
        "imageDigests",
        {name: ref.apply(lambda value: value.split("@", 1)[-1]) for name, ref in image_refs.items()},
    )
    pulumi.export("serviceDns", {name: component.service_dns for name, component in components.items()})
