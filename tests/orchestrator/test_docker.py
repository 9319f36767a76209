"""The deployment files parse, use the real entrypoint and image, and agree with each other.
(No Docker engine or Kubernetes here: this is what can be checked without one.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from phantom.cli import build_parser
from phantom.orchestrator.loader import load_sweep

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
IMAGE_DIR = "/home/ray/phantom"  # WORKDIR of the image: the repository root inside it


def _dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


def _kuberay() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all((DOCKER / "kuberay.yaml").read_text()) if d]
    return {d["kind"]: d for d in docs}


def _launcher() -> dict:
    return yaml.safe_load((DOCKER / "ray-cluster.yaml").read_text())


def _images(node) -> set[str]:
    if isinstance(node, dict):
        return {v for k, v in node.items() if k == "image" and isinstance(v, str)} | {
            i for v in node.values() for i in _images(v)}
    if isinstance(node, list):
        return {i for v in node for i in _images(v)}
    return set()


def test_dockerfile_installs_the_project_and_its_packages():
    text = _dockerfile()
    assert f"WORKDIR {IMAGE_DIR}" in text
    assert re.search(r"pip install --no-cache-dir --no-deps --no-build-isolation -e \.", text)
    # phantom/ and every folder it links in (phantom/workers -> ../workers, ...): what installs as `phantom`
    folders = {"phantom": "phantom", **{link.name: link.resolve().name
                                        for link in (REPO / "phantom").iterdir() if link.is_symlink()}}
    assert set(folders.values()) == {"phantom", "models", "workers", "orchestrator", "analysis", "sweeps"}
    for folder in folders.values():  # the links and what they point to: both in the image
        assert f"COPY --chown=ray:users {folder} ./{folder}" in text, folder
    assert "phantom sweep validate lr50" in text  # the build proves the entrypoint and the shipped sweeps


def test_dockerfile_installs_from_the_lock():
    """The image installs what set-up and CI install: the torch pin and the lock, in one
    resolution, then the project and the --no-deps packages without resolving anything."""
    text = _dockerfile()
    copy = text.index("COPY --chown=ray:users requirements ./requirements")
    install = text.index("pip install --no-cache-dir -r requirements/torch.txt -r requirements/lock.txt")
    assert copy < install < text.index("COPY --chown=ray:users phantom ./phantom")  # cached layer
    assert "pip install --no-cache-dir --no-deps -r requirements/nodeps.txt" in text
    assert not re.search(r"torch\s*==|TORCH_VERSION", text)  # the version is requirements/torch.txt's
    assert re.search(r'\$\{TORCH_INDEX:\+--extra-index-url "\$TORCH_INDEX"\}', text)  # same version, another build
    assert "assert v['lock'] and not v['lock_drift']" in text  # the build fails on drift from the lock
    for path in re.findall(r"-r (requirements/\S+)", text):
        assert (REPO / path).is_file(), path
    # the lock's Ray is the base image's Ray
    from phantom.versions import pins

    ray_from = re.search(r"FROM rayproject/ray:([\d.]+)-", text).group(1)
    assert pins(REPO / "requirements" / "lock.txt")["ray"] == ray_from


def test_one_image_and_one_ray_version_everywhere():
    tag = re.search(r"-t (\S+) \.", _dockerfile()).group(1)
    k = _kuberay()
    assert _images(k["RayCluster"]) == _images(k["RayJob"]) == {tag}
    assert _launcher()["docker"]["image"] == tag
    ray_from = re.search(r"FROM rayproject/ray:([\d.]+)-", _dockerfile()).group(1)
    assert k["RayCluster"]["spec"]["rayVersion"] == ray_from
    import ray

    assert ray.__version__.split(".")[:2] == ray_from.split(".")[:2]  # the version tested here


def _check_command(command: str) -> None:
    argv = shlex.split(command)
    assert argv[:3] == ["phantom", "sweep", "run"]
    args = build_parser().parse_args(argv[1:])  # the real CLI parses it
    assert args.run.__name__ == "run_command"
    assert args.address == "auto"
    assert args.storage.startswith("s3://")  # shared storage, not a node-local path
    sweep_file = REPO / Path(args.file).relative_to(IMAGE_DIR)
    sweep, _ = load_sweep(sweep_file, args.overrides)  # it names a valid sweep of this repo
    assert sweep.name == sweep_file.stem


def test_rayjob_runs_phantom_sweep_on_the_raycluster():
    k = _kuberay()
    job, cluster = k["RayJob"], k["RayCluster"]
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    _check_command(" ".join(job["spec"]["entrypoint"].split()))
    head = cluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # the head runs the driver, not trials
    workers = cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert workers["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_cluster_launcher_runs_the_same_command_against_the_same_storage():
    text = (DOCKER / "ray-cluster.yaml").read_text()
    launcher = _launcher()
    assert launcher["head_node_type"] in launcher["available_node_types"]
    assert launcher["available_node_types"]["head"]["resources"] == {"CPU": 0}
    commands = re.findall(r"'(phantom sweep run [^']+)'", text)
    assert commands
    for command in commands:
        _check_command(command)
    storages = {shlex.split(c)[shlex.split(c).index("--storage") + 1] for c in commands}
    job_storage = _kuberay()["RayJob"]["spec"]["entrypoint"].split("--storage")[1].split()[0]
    assert storages == {job_storage}
    assert any("ray start --head" in c and "--num-cpus=0" in c for c in launcher["head_start_ray_commands"])


def _containers(node):
    if isinstance(node, dict):
        if "containers" in node:
            yield from node["containers"]
        for v in node.values():
            yield from _containers(v)
    elif isinstance(node, list):
        for v in node:
            yield from _containers(v)


def test_the_deployments_reach_s3_through_the_variables_the_tests_use():
    """Region (and an S3-compatible store's endpoint) in the standard AWS variables that
    pyarrow and boto3 read, the ones phantom.testing.s3 gives its clients (issue 18)."""
    from phantom.testing.s3 import client_env

    tested = set(client_env("http://127.0.0.1:1", "k", "s"))
    k = _kuberay()
    config = k["ConfigMap"]
    assert set(config["data"]) == {"AWS_DEFAULT_REGION", "AWS_REGION"} <= tested
    assert config["data"]["AWS_DEFAULT_REGION"] == config["data"]["AWS_REGION"]
    assert "# AWS_ENDPOINT_URL: " in (DOCKER / "kuberay.yaml").read_text()  # documented, off for AWS S3
    containers = [c for kind in ("RayCluster", "RayJob") for c in _containers(k[kind])]
    assert len(containers) == 3  # head, workers, submitter
    for c in containers:
        assert {"secretRef": {"name": "phantom-s3"}} in c["envFrom"], c["name"]
        assert {"configMapRef": {"name": config["metadata"]["name"]}} in c["envFrom"], c["name"]
    options = _launcher()["docker"]["run_options"]
    env = dict(o[3:].split("=", 1) for o in options if o.startswith("-e "))
    assert {key: env[key] for key in ("AWS_DEFAULT_REGION", "AWS_REGION")} == {
        key: config["data"][key] for key in ("AWS_DEFAULT_REGION", "AWS_REGION")}
    assert "# - -e AWS_ENDPOINT_URL=" in (DOCKER / "ray-cluster.yaml").read_text()
