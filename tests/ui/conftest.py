"""Browser tests: a real server filled through the public API, driven by Debian's Chromium.

Every UI test runs in one xdist group (``pytestmark`` in each module), so one worker starts
one server and one browser and fills the home once. The fill goes through ``HttpClient``
with an admin token, as a user's scripts would; the dashboard then reads what they made.

``visit`` loads a page and checks what every page must pass: no console error, no failed
request, no axe-core violation of serious or critical impact, nothing wider than the
window; it saves screenshots at 1280 and 390 pixels into ``tests/ui/screenshots/`` (ignored
by git).
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import serve_in_thread

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HERE = Path(__file__).resolve().parent
SHOTS = HERE / "screenshots"
AXE = HERE / "vendor" / "axe-4.14.1.min.js"
WIDTHS = (1280, 390)
#: Flags for a headless Chromium on a machine with no network and no display.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]  # fmt: skip

pytestmark = pytest.mark.xdist_group("ui")


@dataclass
class Stoa:
    """The filled server: its URL, a token per scope, and refs the tests look for."""

    url: str
    tokens: dict[str, str]
    refs: dict[str, Any] = field(default_factory=dict)


def _skops_bytes(seed: int) -> bytes:
    import numpy as np
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    buffer = io.BytesIO()
    sio.dump(model, buffer)
    return buffer.getvalue()


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def _noncommercial_folder(folder: Path) -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir()
    weights = np.random.default_rng(len(folder.name)).normal(size=(4, 4)).astype(np.float32)
    save_file({"weight": weights}, folder / "model.safetensors")
    (folder / "README.md").write_text(f"---\nlicense: cc-by-nc-4.0\n---\n# {folder.name}\n")
    return folder


def _churn_csv(path: Path, n: int = 400) -> Path:
    from stoa.demo.synthetic_data import churn

    churn(n=n, seed=11).to_csv(path, index=False)
    return path


def fill(client: Any, work: Path) -> dict[str, Any]:
    """Everything the pages show, made through the public API."""
    refs: dict[str, Any] = {}
    # Models: two allowed versions with an alias that moved, one pending, one blocked.
    for seed in (1, 2):
        path = work / f"churn-{seed}.skops"
        path.write_bytes(_skops_bytes(seed))
        client.models.register("churn", path, license="MIT", tags={"team": "growth"},
                               description=f"churn classifier, seed {seed}")  # fmt: skip
    client.models.set_alias("churn", 2, "champion")
    client.models.set_alias("churn", 1, "champion")
    client.models.set_alias("churn", 2, "challenger")
    for name in ("vendor-model", "research-model"):  # non-commercial cards: held for review
        refs[name] = client.models.register(name, _noncommercial_folder(work / name)).ref
    refs["pending"] = refs["research-model"]  # test_registry approves vendor-model
    evil = work / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Evil()))
    refs["blocked"] = client.models.register("evil", evil, license="MIT").ref
    # Prompts: two versions to diff.
    client.prompts.register("greeting", "Hello {{ name }}, how can I help?")
    client.prompts.register("greeting", "Hello {{ name }}!\nHow can I help you with {{ topic }}?")
    # A dataset, and runs that read it, with curves.
    csv = _churn_csv(work / "churn.csv")
    dataset = client.datasets.register("churn-data", csv, description="synthetic churn")
    refs["dataset"] = dataset.ref
    runs = []
    for i, lr in enumerate((0.1, 0.03)):
        run = client.runs.create(name=f"train-lr-{lr}", params={"lr": str(lr), "epochs": "30",
                                 "optimizer": "adam" if i else "sgd"}, inputs=[dataset.ref],
                                 status="running")  # fmt: skip
        points = [
            {"key": key, "value": value(step), "step": step}
            for step in range(30)
            for key, value in (
                ("loss", lambda s, lr=lr: math.exp(-lr * s) + 0.05),
                ("accuracy", lambda s, lr=lr: 0.95 - 0.45 * math.exp(-lr * s)),
            )
        ]
        client.runs.log_batch(run.id, metrics=points, tags={"stage": "train"})
        report = work / "report.txt"
        report.write_text(f"final accuracy {points[-1]['value']:.3f}\n")
        client.runs.log_artifact(run.id, report)
        client.runs.finish(run.id)
        runs.append(run.id)
    failed = client.runs.create(name="train-broken", params={"lr": "9"}, status="running")
    client.runs.finish(failed.id, status="failed")
    client.runs.create(name="train-still-going", params={"lr": "0.01"}, status="running")
    refs["runs"] = runs
    refs["failed_run"] = failed.id
    # A selection over the registered dataset, with its child runs.
    selection = client.selections.run({
        "name": "churn",
        "data": {"dataset": dataset.ref, "target": "churned",
                 "split": {"test_size": 0.25, "seed": 11}},
        "primary_metric": "roc_auc_ovr",
        "constraints": {"max_p95_ms": 1000, "min_roc_auc_ovr": 0.6},
        "evaluation": {"bootstrap": 50},
        "measurement": {"single": 200, "batch": 64},
        "candidates": [
            {"name": "logreg", "kind": "logistic_regression", "params": {"max_iter": 500}},
            {"name": "forest", "kind": "random_forest", "params": {"n_estimators": 20}},
        ],
    }, register="churn-selected")  # fmt: skip
    refs["selection"] = selection["run_id"]
    # A knowledge base with two ingests and an evaluation.
    docs = work / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text(
        "# Refunds\n\nA refund is paid back to the original card within five working days.\n"
        "Contact alice@example.com for disputes.\n"
    )
    (docs / "shipping.md").write_text(
        "# Shipping\n\nParcels leave the warehouse every weekday before noon.\n"
    )
    client.kbs.create("handbook", pii="redact", description="support handbook")
    client.kbs.ingest("handbook", [docs], sync=True)
    (docs / "shipping.md").write_text(
        "# Shipping\n\nParcels leave the warehouse every weekday before noon, and on "
        "Saturdays in December.\n"
    )
    client.kbs.ingest("handbook", [docs], sync=True)
    questions = [
        {"query": "How long until my refund arrives?", "relevant": ["refunds.md"]},
        {"query": "When do parcels ship?", "relevant": ["shipping.md"]},
    ]
    client.kbs.eval("handbook", "\n".join(json.dumps(q) for q in questions), k=3)
    return refs


@pytest.fixture(scope="session")
def stoa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stoa]:
    from stoa.client import HttpClient, LocalClient
    from stoa.core.settings import Settings
    from stoa.serve.server.app import create_app

    work = tmp_path_factory.mktemp("ui")
    settings = Settings(home=work / "home")
    local = LocalClient(settings=settings)
    tokens = {scope: local.tokens.create(f"ui-{scope}", [scope]).token
              for scope in ("admin", "write", "read")}  # fmt: skip
    with serve_in_thread(create_app(client=local)) as url:
        api = HttpClient(url, token=tokens["admin"])
        refs = fill(api, work)
        api.close()
        yield Stoa(url, tokens, refs)
    local.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install chromium (.ci/run does it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


class Visitor:
    """A browser context signed in with one token, and the checks every page passes."""

    def __init__(self, browser: Any, stoa: Stoa, scope: str | None):
        self.stoa = stoa
        self.context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url}"))
        self.page.on(
            "response",
            lambda r: r.status >= 400 and self.errors.append(f"{r.status}: {r.url}"),
        )
        if scope:
            self.sign_in(scope)

    def sign_in(self, scope: str) -> None:
        self.page.goto(f"{self.stoa.url}/ui/login")
        self.page.fill("#token", self.stoa.tokens[scope])
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"{self.stoa.url}/ui")

    def visit(self, path: str, shot: str | None = None, *, expect_errors: bool = False) -> Any:
        """Load ``path``, check it, and save its screenshots under ``shot`` (a file stem)."""
        self.errors.clear()
        self.page.set_viewport_size({"width": WIDTHS[0], "height": 900})
        self.page.goto(self.stoa.url + path)
        self.page.wait_for_load_state("networkidle")
        if not expect_errors:
            assert not self.errors, f"{path}: {self.errors}"
            self.check_accessibility(path)
        for width in WIDTHS:
            self.page.set_viewport_size({"width": width, "height": 900})
            self.page.wait_for_timeout(150)  # charts redraw on resize
            overflow = self.page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 1, f"{path} is {overflow}px wider than a {width}px window"
            if shot:
                SHOTS.mkdir(exist_ok=True)
                self.page.screenshot(path=str(SHOTS / f"{shot}-{width}.png"), full_page=True)
        self.page.set_viewport_size({"width": WIDTHS[0], "height": 900})
        return self.page

    def shoot(self, name: str) -> None:
        """Screenshots of the page as it is now (after a click or a form), at every width,
        and nothing wider than the window."""
        page = self.page
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.wait_for_timeout(100)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{name} is {overflow}px wider than a {width}px window"
            SHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})

    def check_accessibility(self, path: str) -> None:
        self.page.add_script_tag(content=AXE.read_text())
        result = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
        )
        serious = [v for v in result if v["impact"] in ("serious", "critical")]
        assert not serious, f"{path}: axe violations {json.dumps(serious, indent=1)}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visitor(browser: Any, stoa: Stoa) -> Iterator[Any]:
    """Make a visitor signed in with the token of a scope (None: not signed in)."""
    made: list[Visitor] = []

    def make(scope: str | None = "admin") -> Visitor:
        made.append(Visitor(browser, stoa, scope))
        return made[-1]

    yield make
    for v in made:
        v.close()
