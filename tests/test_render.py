import pytest
import yaml

from flyte_infra import FlyteInfraError, InvalidSpecError, PreflightError, Resources, TaskEnvironment
from flyte_infra.artifacts.dockerfile import image_spec
from flyte_infra.artifacts.render import render
from flyte_infra.deploy.settings import load_stack_settings
from flyte_infra.loader import Program

from .locks import fake_lock
from .stacks import ROOT, example, stack, validate

NAMES = ("data-prep", "pipeline", "train")


def documents(path):
    return list(yaml.safe_load_all(path.read_text()))


def image_of(manifests_path):
    return documents(manifests_path)[1]["spec"]["template"]["spec"]["containers"][0]["image"]


def digests(program, settings, **overrides):
    refs = {}
    lock = fake_lock(program.environments)
    for name in NAMES:
        tag = image_spec(program.environment(name), program, settings, lock).tag
        refs[name] = f"{settings.registry}/{settings.repository}:{tag}@sha256:" + "a" * 64
    return refs | overrides


def test_render_writes_what_would_be_deployed(tmp_path):
    program, _ = example()
    settings = load_stack_settings(ROOT, "dev")
    lock = fake_lock(program.environments)
    written = render(program, settings, tmp_path, lock=lock)
    tags = {image_spec(env, program, settings, lock).tag for env in program.environments}
    assert len(tags) == 2  # train and pipeline share one image
    assert sorted(written) == sorted(
        [tmp_path / "namespace.yaml"]
        + [tmp_path / name / "manifests.yaml" for name in NAMES]
        + [tmp_path / "images" / tag / "Dockerfile" for tag in tags]
    )
    assert sorted(path.name for path in (tmp_path / "images").iterdir()) == sorted(tags)
    assert documents(tmp_path / "namespace.yaml")[0]["metadata"]["name"] == "flyte-dev"
    for name in NAMES:
        path = tmp_path / name / "manifests.yaml"
        assert path.read_text().startswith("# The image is referenced by tag: no digest is known")
        objects = documents(path)
        assert [obj["kind"] for obj in objects] == [
            "ServiceAccount",
            "Deployment",
            "Service",
            "NetworkPolicy",
        ]
        for obj in objects:
            validate(obj)
        image = image_of(path)
        assert image.startswith("127.0.0.1:5000/flyte-infra/environments:sha-")
        context = tmp_path / "images" / image.rsplit(":", 1)[-1]
        assert (context / "Dockerfile").read_text() == image_spec(
            program.environment(name), program, settings, lock
        ).dockerfile
        assert (context / "code" / "ml_pipeline.py").is_file()
        assert (context / "etc" / "hosts").is_file() and not (context / "wheels").exists()
    validate(documents(tmp_path / "namespace.yaml")[0])


def test_render_pins_known_digests(tmp_path):
    program, _ = example()
    lock = fake_lock(program.environments)
    refs = digests(program, stack())
    render(program, stack(), tmp_path / "given", refs, lock=lock)
    path = tmp_path / "given" / "train" / "manifests.yaml"
    assert image_of(path) == refs["train"] and not path.read_text().startswith("#")
    render(program, stack(images=refs), tmp_path / "configured", lock=lock)
    assert image_of(tmp_path / "configured" / "pipeline" / "manifests.yaml") == refs["pipeline"]


@pytest.mark.parametrize(
    ("refs", "error"),
    [
        (
            {"train": "r/e:sha-old@sha256:" + "b" * 64},
            r"'train': its image spec changed since the image in the given images was built",
        ),
        ({"train": "r/e:sha-x"}, r"'train': 'r/e:sha-x' from the given images is not pinned by digest"),
    ],
)
def test_stale_or_unpinned_digests_are_refused_and_nothing_is_written(tmp_path, refs, error):
    program, _ = example()
    given = digests(program, stack(), **refs)
    with pytest.raises(FlyteInfraError, match=error):
        render(program, stack(), tmp_path / "out", given, lock=fake_lock(program.environments))
    assert not (tmp_path / "out").exists()


def test_nothing_is_written_on_a_preflight_error(tmp_path):
    child = TaskEnvironment("child", packages=["torch"])
    parent = TaskEnvironment("parent", depends_on=[child])
    lock = fake_lock([child, parent])
    with pytest.raises(PreflightError, match="'parent' packages"):
        render(Program("bad", (), (child, parent)), stack(), tmp_path / "out", lock=lock)
    assert not (tmp_path / "out").exists()


def test_nothing_is_written_when_a_later_environment_fails(tmp_path):
    cpu = TaskEnvironment("a-cpu")
    gpu = TaskEnvironment("z-gpu", resources=Resources(gpu="L40S"))
    with pytest.raises(InvalidSpecError, match=r"TaskEnvironment 'z-gpu': resources\.gpu: L40S has no"):
        lock = fake_lock([cpu, gpu])
        render(Program("p", (), (cpu, gpu)), stack(acceleratorLabels="gke"), tmp_path / "out", lock=lock)
    assert not (tmp_path / "out").exists()


def test_nothing_is_written_when_the_stack_names_an_unknown_environment(tmp_path):
    program, _ = example()
    typo = stack(replicasPerEnvironment={"trian": 1})
    with pytest.raises(InvalidSpecError, match="replicasPerEnvironment: no environment named 'trian'"):
        render(program, typo, tmp_path / "out", lock=fake_lock(program.environments))
    assert not (tmp_path / "out").exists()


def test_a_second_render_removes_the_output_of_environments_that_no_longer_exist(tmp_path):
    program, _ = example()
    settings = load_stack_settings(ROOT, "dev")
    lock = fake_lock(program.environments)
    render(program, settings, tmp_path, lock=lock)
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")  # the user's own: never touched
    before = {path.name for path in (tmp_path / "images").iterdir()}
    data_prep = program.environment("data-prep")
    smaller = Program(program.module_name, program.code, (data_prep,))
    render(smaller, settings, tmp_path, lock=lock)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        ".flyte-infra-render",
        "data-prep",
        "images",
        "kustomization.yaml",
        "namespace.yaml",
    ]
    kept = image_spec(data_prep, program, settings, lock).tag
    assert [path.name for path in (tmp_path / "images").iterdir()] == [kept]
    assert len(before) == 2 and kept in before
    listed = (tmp_path / ".flyte-infra-render").read_text().splitlines()
    assert "data-prep/manifests.yaml" in listed and not any(line.startswith("train/") for line in listed)
    assert all((tmp_path / line).is_file() for line in listed)


def test_render_refuses_a_non_empty_directory_it_did_not_write_and_writes_nothing(tmp_path):
    program, _ = example()
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "notes.txt").write_text("mine\n")
    with pytest.raises(
        FlyteInfraError, match=r"render: .* is not empty and was not written by `flyte-infra render`"
    ):
        render(program, load_stack_settings(ROOT, "dev"), tmp_path, lock=fake_lock(program.environments))
    assert [path.name for path in tmp_path.rglob("*")] == ["train", "notes.txt"]
