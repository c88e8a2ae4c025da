"""The deploy/ folder: the KubeRay manifests and the Dockerfile say what the docs promise.

Each rule lives in a checker that returns readable problems, and each checker is run on
the shipped file (no problems) and on broken copies (exactly the expected problem), so
no rule here can pass by checking nothing.
"""

from __future__ import annotations

import ast
import copy
import re
import shlex
import tomllib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.serve.schema import DeploymentSchema, ServeDeploySchema

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERAY = DEPLOY / "kuberay"
IMPORT_PATH = "stoa.serve.ray.endpoints:build_app"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

Manifest = dict[str, Any]


def _pin(requirements: list[str], name: str) -> str:
    """The exact version pyproject pins for ``name`` (extras allowed)."""
    for requirement in requirements:
        found = re.fullmatch(rf"{name}(?:\[[^\]]*\])?==(\S+)", requirement)
        if found:
            return found.group(1)
    raise AssertionError(f"pyproject.toml pins no exact version of {name}")


TORCH = _pin(PYPROJECT["project"]["dependencies"], "torch")
RAY = _pin(PYPROJECT["project"]["optional-dependencies"]["ray"], "ray")


def _docs() -> list[tuple[str, Manifest]]:
    return [
        (path.name, doc)
        for path in sorted(KUBERAY.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]


def _one(kind: str) -> Manifest:
    found = [doc for _, doc in _docs() if doc.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind} in deploy/kuberay, found {len(found)}"
    return found[0]


# -- the RayService -------------------------------------------------------------------

_UNITS = {"": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value: object) -> Decimal:
    """A Kubernetes quantity ("500m", "4Gi", 2) as a number, so that they compare."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]{0,2})", str(value))
    if not found or found.group(2) not in _UNITS:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return Decimal(found.group(1)) * _UNITS[found.group(2)]


def top_level(path: Path) -> dict[str, object]:
    """What a module defines at its top level, with the value of each literal constant."""
    names: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = None
        elif isinstance(node, ast.Assign):
            value = node.value.value if isinstance(node.value, ast.Constant) else None
            names |= {t.id: value for t in node.targets if isinstance(t, ast.Name)}
    return names


def _import_problems(import_path: object) -> tuple[list[str], dict[str, object]]:
    """Problems with an import_path, and the names its module defines."""
    if not isinstance(import_path, str) or not re.fullmatch(r"[\w.]+:\w+", import_path):
        return [f"import_path {import_path!r} is not module:attribute"], {}
    if import_path != IMPORT_PATH:
        return [f"import_path {import_path!r} is not {IMPORT_PATH!r}"], {}
    module, attribute = import_path.split(":")
    path = ROOT / "src" / Path(*module.split(".")).with_suffix(".py")
    if not path.is_file():
        return [f"import_path {import_path!r}: no file {path.relative_to(ROOT)}"], {}
    names = top_level(path)
    if attribute not in names:
        return [f"import_path {import_path!r}: {path.relative_to(ROOT)} defines no {attribute}"], {}
    return [], names


def _serve_problems(text: object) -> list[str]:
    try:
        config = yaml.safe_load(text) if isinstance(text, str) else None
        ServeDeploySchema.model_validate(config)
    except (yaml.YAMLError, ValueError) as exc:
        return [f"serveConfigV2 is not a Ray Serve config: {str(exc).splitlines()[0]}"]
    found = []
    for app in config["applications"]:
        wrong, names = _import_problems(app.get("import_path"))
        found += wrong
        if not isinstance((app.get("args") or {}).get("endpoint"), str):
            found.append(f"application {app.get('name')}: args.endpoint must name an endpoint")
        for deployment in app.get("deployments", []):
            unknown = sorted(set(deployment) - set(DeploymentSchema.model_fields))
            if unknown:
                found.append(f"deployment {deployment.get('name')}: unknown options {unknown}")
            if names.get("DEPLOYMENT") not in (None, deployment.get("name")):
                found.append(
                    f"deployment {deployment.get('name')}: the app names its deployment "
                    f"{names['DEPLOYMENT']!r}, so these options would apply to nothing"
                )
    return found


def _containers(cluster: Manifest) -> list[tuple[str, Manifest]]:
    groups = [("head", cluster["headGroupSpec"])]
    groups += [(group["groupName"], group) for group in cluster.get("workerGroupSpecs", [])]
    return [(name, c) for name, g in groups for c in g["template"]["spec"]["containers"]]


def _container_problems(group: str, container: Manifest, secrets: set[str]) -> list[str]:
    name, found = f"{group}/{container['name']}", []
    refs = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
    if not refs or set(refs) - secrets:
        found.append(f"{name}: envFrom secrets {refs}, expected one of {sorted(secrets)}")
    resources = container.get("resources", {})
    for key in ("cpu", "memory"):
        request = resources.get("requests", {}).get(key)
        limit = resources.get("limits", {}).get(key)
        if request is None or limit is None:
            found.append(f"{name}: {key} needs both a request and a limit")
        elif quantity(request) > quantity(limit):
            found.append(f"{name}: {key} request {request} is above its limit {limit}")
    return found


def _cluster_problems(cluster: Manifest, secrets: set[str]) -> list[str]:
    found = []
    if cluster.get("rayVersion") != RAY:
        found.append(f"rayVersion {cluster.get('rayVersion')!r} is not pyproject's ray {RAY}")
    params = cluster["headGroupSpec"].get("rayStartParams", {})
    if params.get("num-cpus") != "0":
        found.append(f'head rayStartParams num-cpus is {params.get("num-cpus")!r}, not "0"')
    if params.get("dashboard-host") != "0.0.0.0":
        found.append("head rayStartParams dashboard-host is not 0.0.0.0")
    for group in cluster.get("workerGroupSpecs", []):
        low, count, high = (group.get(k) for k in ("minReplicas", "replicas", "maxReplicas"))
        if not all(isinstance(n, int) for n in (low, count, high)) or not low <= count <= high:
            found.append(
                f"worker group {group['groupName']}: needs minReplicas <= replicas <= "
                f"maxReplicas, got {low} <= {count} <= {high}"
            )
    containers = _containers(cluster)
    images = sorted({c.get("image") for _, c in containers})
    if len(images) != 1:
        found.append(f"head and workers must run one image, found {images}")
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    ports = {(p.get("name"), p["containerPort"]) for p in head.get("ports", [])}
    for port in (("serve", 8000), ("gcs-server", 6379)):
        if port not in ports:
            found.append(f"head container has no port {port[1]} named {port[0]}")
    for group, container in containers:
        found += _container_problems(group, container, secrets)
    return found


def problems(manifest: Manifest, secrets: set[str]) -> list[str]:
    """What is wrong with a RayService for Stoa; ``secrets`` are the Secrets we ship."""
    if (manifest.get("apiVersion"), manifest.get("kind")) != ("ray.io/v1", "RayService"):
        return [f"expected ray.io/v1 RayService, got {manifest.get('apiVersion')}"]
    spec = manifest["spec"]
    return _serve_problems(spec.get("serveConfigV2")) + _cluster_problems(
        spec["rayClusterConfig"], secrets
    )


def _secret_names() -> set[str]:
    return {doc["metadata"]["name"] for _, doc in _docs() if doc.get("kind") == "Secret"}


def test_every_yaml_document_parses_and_names_itself() -> None:
    docs = _docs()
    assert {name for name, _ in docs} >= {"rayservice.yaml", "secret.example.yaml"}
    for name, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), name


def test_the_rayservice_has_no_problems() -> None:
    assert problems(_one("RayService"), _secret_names()) == []


def test_the_rayservice_serves_stoas_app_and_uses_the_secret() -> None:
    service = _one("RayService")
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    assert (app["import_path"], app["route_prefix"]) == (IMPORT_PATH, "/")
    assert [d["name"] for d in app["deployments"]] == ["StoaEndpoint"]
    assert service["metadata"]["name"] == "stoa"  # KubeRay's Service: stoa-serve-svc
    assert _secret_names() == {"stoa-state"}


def _dig(path: str) -> Callable[[Manifest], Manifest]:
    """A getter for a dotted path into the RayService; digits index lists."""

    def get(manifest: Manifest) -> Any:
        node: Any = manifest
        for key in path.split("."):
            node = node[int(key)] if key.isdigit() else node[key]
        return node

    return get


_CLUSTER = _dig("spec.rayClusterConfig")
_HEAD = _dig("spec.rayClusterConfig.headGroupSpec")
_HEAD_C = _dig("spec.rayClusterConfig.headGroupSpec.template.spec.containers.0")
_WORKERS = _dig("spec.rayClusterConfig.workerGroupSpecs.0")
_WORKER_C = _dig("spec.rayClusterConfig.workerGroupSpecs.0.template.spec.containers.0")


def _serve_edit(edit: Callable[[Manifest], None]) -> Callable[[Manifest], None]:
    def mutate(manifest: Manifest) -> None:
        config = yaml.safe_load(manifest["spec"]["serveConfigV2"])
        edit(config["applications"][0])
        manifest["spec"]["serveConfigV2"] = yaml.safe_dump(config)

    return mutate


BROKEN: dict[str, tuple[Callable[[Manifest], None], str]] = {
    "alpha api": (lambda m: m.update(apiVersion="ray.io/v1alpha1"), "expected ray.io/v1"),
    "serve config not yaml": (
        lambda m: m["spec"].update(serveConfigV2="applications: [oops"),
        "serveConfigV2 is not a Ray Serve config",
    ),
    "replicas and autoscaling": (
        _serve_edit(lambda a: a["deployments"][0].update(autoscaling_config={"max_replicas": 3})),
        "serveConfigV2 is not a Ray Serve config",
    ),
    "import path not module:attr": (
        _serve_edit(lambda a: a.update(import_path="stoa.serve.ray.endpoints.build_app")),
        "is not module:attribute",
    ),
    "import path elsewhere": (
        _serve_edit(lambda a: a.update(import_path="stoa.serve.ray.nowhere:build_app")),
        f"is not {IMPORT_PATH!r}",
    ),
    "no endpoint arg": (_serve_edit(lambda a: a.pop("args")), "args.endpoint must name"),
    "typo in deployment": (
        _serve_edit(lambda a: a["deployments"][0].update(num_replica=2)),
        "unknown options ['num_replica']",
    ),
    "deployment renamed": (
        _serve_edit(lambda a: a["deployments"][0].update(name="Stoa")),
        "the app names its deployment 'StoaEndpoint'",
    ),
    "ray version": (lambda m: _CLUSTER(m).update(rayVersion="2.9.0"), "is not pyproject's ray"),
    "cpus on head": (
        lambda m: _HEAD(m)["rayStartParams"].update({"num-cpus": "1"}),
        "num-cpus is '1', not \"0\"",
    ),
    "min above max": (
        lambda m: _WORKERS(m).update(minReplicas=9),
        "needs minReplicas <= replicas <= maxReplicas, got 9 <= 2 <= 8",
    ),
    "two images": (lambda m: _WORKER_C(m).update(image="other:1"), "must run one image"),
    "no gcs port": (
        lambda m: _HEAD_C(m).update(
            ports=[p for p in _HEAD_C(m)["ports"] if p["name"] != "gcs-server"]
        ),
        "no port 6379 named gcs-server",
    ),
    "unknown secret": (
        lambda m: _WORKER_C(m).update(envFrom=[{"secretRef": {"name": "stoa"}}]),
        "stoa-workers/ray-worker: envFrom secrets ['stoa']",
    ),
    "request above limit": (
        lambda m: _HEAD_C(m)["resources"]["limits"].update(memory="3500Mi"),
        "head/ray-head: memory request 4Gi is above its limit 3500Mi",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_rayservice_gets_exactly_its_problem(case: str) -> None:
    mutate, expected = BROKEN[case]
    good = _one("RayService")
    broken = copy.deepcopy(good)
    mutate(broken)
    baseline = problems(good, _secret_names())  # empty once the Ray app module exists
    new = [p for p in problems(broken, _secret_names()) if p not in baseline]
    assert len(new) == 1 and expected in new[0], new


def test_quantities_compare_across_units() -> None:
    assert quantity("500m") == Decimal("0.5")
    assert quantity("4Gi") == 4 * 2**30 > quantity("4G") == 4 * 10**9
    assert quantity(2) == 2
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        quantity("4 GiB")


# -- the Secret -----------------------------------------------------------------------


def test_the_secret_example_names_the_shared_state() -> None:
    secret = _one("Secret")
    data = secret["stringData"]
    assert (secret["apiVersion"], secret["type"]) == ("v1", "Opaque")
    assert all(isinstance(value, str) for value in data.values()), data  # k8s needs strings
    assert data["STOA_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert data["STOA_BLOB_URL"].startswith("s3://")
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(data)
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", key) for key in data), sorted(data)


def test_core_objects_match_kubernetes_schemas() -> None:
    """The Secret and every pod template, against Kubernetes' own schemas (offline)."""
    validate = pytest.importorskip("kubernetes_validate", reason="not a dev dependency yet")
    secret = _one("Secret")
    validate.validate(secret, "1.30", strict=True)
    with pytest.raises(validate.ValidationError, match="is not of type 'string'"):
        validate.validate({**secret, "stringData": {"PORT": 5432}}, "1.30", strict=True)
    cluster = _CLUSTER(_one("RayService"))
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}}
        validate.validate({**template, "template": group["template"]}, "1.30", strict=True)


# -- the Dockerfile -------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments gone."""
    found, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        word, _, rest = (pending + stripped).partition(" ")
        found.append((word.upper(), rest.strip()))
        pending = ""
    return found


def _env(steps: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for word, rest in steps:
        if word == "ENV":
            pairs = shlex.split(rest)
            if "=" not in pairs[0]:  # the old form: ENV KEY value
                pairs = ["=".join(rest.split(None, 1))]
            env |= dict(pair.split("=", 1) for pair in pairs)
    return env


def _reincluded() -> set[str]:
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    return {line[1:].strip("/") for line in lines if line.startswith("!")}


def dockerfile_problems(steps: list[tuple[str, str]]) -> list[str]:
    """What is wrong with Stoa's image, from its parsed instructions."""
    found = []
    runs = [rest for word, rest in steps if word == "RUN"]
    torch = [i for i, run in enumerate(runs) if f"torch=={TORCH}" in run]
    project = [i for i, run in enumerate(runs) if re.search(r"pip install [\"']?\.\[", run)]
    if not torch or "--index-url https://download.pytorch.org/whl/cpu" not in runs[torch[0]]:
        found.append(f"torch=={TORCH} is not installed from the CPU index")
    if not project:
        found.append("the project is never installed with its extras (pip install .[…])")
    else:
        extras = set(re.search(r"\.\[([^\]]*)\]", runs[project[0]]).group(1).split(","))
        if not {"ray", "s3", "milvus"} <= extras:
            found.append(
                f"the project is installed with extras {sorted(extras)}, not ray,s3,milvus"
            )
        if torch and torch[0] > project[0]:
            found.append("torch is installed after the project, so pip fetches the CUDA build")
    if not any(re.search(r"\bwget\b", run) for run in runs):
        found.append("wget is not installed (KubeRay's exec probes call it)")
    users = [rest for word, rest in steps if word == "USER"]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        found.append(f"the image runs as root (USER {users[-1] if users else 'missing'})")
    exposed = {p for word, rest in steps if word == "EXPOSE" for p in rest.split()}
    if not {"8000", "8265"} <= exposed:
        found.append(f"EXPOSE {sorted(exposed)} lacks 8000 or 8265")
    expected = {"STOA_HOME": "/var/lib/stoa", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env = _env(steps)
    for key, value in expected.items():
        if env.get(key) != value:
            found.append(f"ENV {key} is {env.get(key)!r}, not {value!r}")
    for word, rest in steps:
        if word == "COPY":
            *sources, _ = [arg for arg in shlex.split(rest) if not arg.startswith("--")]
            for source in sources:
                if not (ROOT / source).exists():
                    found.append(f"COPY {source}: no such path in the repository")
                elif source.strip("/").split("/")[0] not in _reincluded():
                    found.append(f"COPY {source}: Dockerfile.dockerignore leaves it out")
    return found


DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def test_the_dockerfile_has_no_problems() -> None:
    steps = instructions(DOCKERFILE)
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert dockerfile_problems(steps) == []


def _torch_last(text: str) -> str:
    torch = next(line for line in text.splitlines() if "torch==" in line and "RUN" in line)
    return text.replace(torch + "\n", "") + torch + "\n"


BROKEN_DOCKERFILES: dict[str, tuple[Callable[[str], str], str]] = {
    "torch from pypi": (
        lambda t: t.replace(" --index-url https://download.pytorch.org/whl/cpu", ""),
        "not installed from the CPU index",
    ),
    "torch after the project": (_torch_last, "installed after the project"),
    "no ray extra": (lambda t: t.replace(".[ray,s3,milvus]", ".[s3,milvus]"), "extras"),
    "root": (lambda t: t.replace("USER stoa", "USER root"), "runs as root (USER root)"),
    "no serve port": (lambda t: t.replace("EXPOSE 8000 8265", "EXPOSE 8265"), "lacks 8000"),
    "online hub": (
        lambda t: t.replace("HF_HUB_OFFLINE=1", "HF_HUB_OFFLINE=0"),
        "ENV HF_HUB_OFFLINE is '0'",
    ),
    "no wget": (lambda t: t.replace("install -y --no-install-recommends wget", "clean"), "wget"),
    "missing source": (
        lambda t: t.replace("COPY src/ src/", "COPY source/ src/"),
        "COPY source/: no such path",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_DOCKERFILES))
def test_a_broken_dockerfile_gets_exactly_its_problem(case: str) -> None:
    mutate, expected = BROKEN_DOCKERFILES[case]
    broken = mutate(DOCKERFILE)
    assert broken != DOCKERFILE, "the mutation no longer matches the Dockerfile"
    found = dockerfile_problems(instructions(broken))
    assert len(found) == 1 and expected in found[0], found


def test_the_parser_joins_continuations_and_drops_comments() -> None:
    text = "FROM x\n# note\nRUN a \\\n    && b\nENV A=1 \\\n    B=2\nENV C three\n"
    steps = instructions(text)
    assert steps == [("FROM", "x"), ("RUN", "a && b"), ("ENV", "A=1 B=2"), ("ENV", "C three")]
    assert _env(steps) == {"A": "1", "B": "2", "C": "three"}
