"""`stoa server` as a real process on a free port, driven over HTTP by ``stoa.HttpClient``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import stoa
from stoa import (
    AuthenticationError,
    ConflictError,
    HttpClient,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RefusedError,
)
from tests.artifacts import folder_model, malicious_pickle

pytestmark = pytest.mark.slow

WAIT_S = 30
_VENV_STOA = Path(sys.executable).parent / "stoa"
STOA = str(_VENV_STOA) if _VENV_STOA.exists() else shutil.which("stoa")


def stoa_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any STOA_* setting, plus a home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOA_")}
    env.update(STOA_HOME=str(home), STOA_USER="tester", **extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _healthy(proc: subprocess.Popen, url: str, log: Path) -> bool:
    """True once /healthz answers; False when the process died of a port clash."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if "address already in use" in log.read_text().lower():
                return False
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server not healthy after {WAIT_S} s:\n{log.read_text()}")


@contextlib.contextmanager
def running_server(
    tmp_path: Path, env: dict[str, str], host: str = "127.0.0.1", *extra: str
) -> Iterator[str]:
    """Start `stoa server`, yield its URL once healthy, and always stop it afterwards."""
    for _ in range(3):  # another test may grab the port between probing and binding
        port = free_port()
        log = tmp_path / f"server-{port}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [STOA, "server", "--host", host, "--port", str(port), *extra],
                env=env,
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            if _healthy(proc, url, log):
                yield url
                return
        finally:
            stop(proc)
    raise AssertionError("could not find a free port in three tries")


def quoted_folder_model(root: Path) -> Path:
    """Weights, config and a file whose name needs quoting in a URL."""
    return folder_model(root, vocab_name="vocab 1#?%2F.txt", value=4.0)


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def blob_path(home: Path, data: bytes) -> Path:
    sha = hashlib.sha256(data).hexdigest()
    return home / "blobs" / "sha256" / sha[:2] / sha[2:]


def test_http_client_against_a_real_server(tmp_path, sk_model, skops_file):
    model, x = sk_model
    home = tmp_path / "home"
    with running_server(tmp_path, stoa_env(home)) as url:
        client = stoa.Client(url=url)
        assert isinstance(client, HttpClient)
        try:
            # A live scikit-learn model goes up as skops and comes back predicting the same.
            info = client.models.log("churn", model, tags={"team": "risk"}, license="MIT")
            assert (info.ref, info.status, info.flavor, info.format) == (
                "churn@1",
                "allowed",
                "sklearn",
                "skops",
            )
            assert info.tags == {"team": "risk"} and info.license == "MIT"
            loaded = client.models.load("churn@1")
            assert loaded is not model
            np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
            np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x))

            # A folder model, downloaded file by file with every hash checked.
            folder = quoted_folder_model(tmp_path)
            enc = client.models.register("encoder", folder, license="Apache-2.0")
            assert (enc.artifact, enc.status, enc.flavor) == ("folder", "allowed", None)
            out = client.models.download("encoder@1", tmp_path / "out")
            assert files_of(out) == files_of(folder)
            single = client.models.download("churn", tmp_path / "churn.skops")
            assert hashlib.sha256(single.read_bytes()).hexdigest() == info.sha256

            # The rest of the surface, over the wire.
            client.models.set_alias("churn", 1, "champion")
            assert client.models.show("churn@champion").version == 1
            assert [s.name for s in client.models.list()] == ["churn", "encoder"]
            assert [v.ref for v in client.models.versions("churn")] == ["churn@1"]
            assert [v.ref for v in client.models.search({"team": "risk"})] == ["churn@1"]
            assert client.models.alias_history("churn")[0].detail["to"] == 1
            client.prompts.register("greet", "Hi {{ who }}", variables=["who"])
            assert client.prompts.render("greet@1", {"who": "Ada"}) == "Hi Ada"

            # Errors arrive as the StoaError subclass the server raised, with its message.
            with pytest.raises(NotFoundError, match="no model named 'nope'") as caught:
                client.models.show("nope")
            assert caught.value.field == "name" and caught.value.fix
            with pytest.raises(NotFoundError, match="has no version 7"):
                client.models.load("churn@7")
            with pytest.raises(InvalidInputError, match="is not a valid name") as caught:
                client.models.register("bad name!", skops_file)
            assert caught.value.field == "name"
            with pytest.raises(InvalidInputError, match="is a number") as caught:
                client.models.set_alias("churn", 1, "123")
            assert caught.value.field == "alias"
            with pytest.raises(InvalidInputError, match="looks like a path"):
                client.models.show("..")
            with pytest.raises(NotFoundError) as caught:  # never reaches another route
                client.models.show("../tokens")
            assert caught.value.field == "url"
            with pytest.raises(ConflictError, match="champion"):
                client.models.archive("churn@1")

            pkl = tmp_path / "model.pkl"
            pkl.write_bytes(malicious_pickle())
            blocked = client.models.register("risky", pkl)
            assert blocked.status == "blocked" and blocked.findings
            with pytest.raises(RefusedError, match="blocked"):
                client.models.load("risky")
            with pytest.raises(RefusedError, match="blocked") as caught:
                client.models.download("risky", tmp_path / "risky.pkl")
            assert caught.value.field == "ref"
            assert not (tmp_path / "risky.pkl").exists()

            # Bytes altered in the store never reach the destination.
            stored = blob_path(home, (folder / "model.safetensors").read_bytes())
            data = bytearray(stored.read_bytes())
            data[-1] ^= 0xFF
            stored.write_bytes(bytes(data))
            with pytest.raises(IntegrityError):
                client.models.download("encoder", tmp_path / "tampered")
            assert not (tmp_path / "tampered" / "model.safetensors").exists()
            assert not [p for p in (tmp_path / "tampered").rglob(".stoa-*")]
        finally:
            client.close()


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STOA, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=WAIT_S
    )


def test_a_public_bind_needs_a_token(tmp_path):
    env = stoa_env(tmp_path / "home")
    refused = _run(["server", "--host", "0.0.0.0", "--port", str(free_port())], env, tmp_path)
    assert refused.returncode == 2, refused
    assert "refusing to bind" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr

    created = _run(["tokens", "create", "admin", "--scope", "admin", "--json"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    admin_token = json.loads(created.stdout)["token"]

    with running_server(tmp_path, env, host="0.0.0.0") as url:
        anonymous = HttpClient(url)
        admin = HttpClient(url, token=admin_token)
        try:
            with pytest.raises(AuthenticationError, match="token is required"):
                anonymous.models.list()
            forged = HttpClient(url, token=admin_token[:-4] + "xxxx")
            with pytest.raises(AuthenticationError, match="unknown token"):
                forged.models.list()
            forged.close()
            assert admin.models.list() == []
            reader_token = admin.tokens.create("ro", ["read"])
            reader = HttpClient(url, token=reader_token.token)
            assert reader.prompts.list() == []
            with pytest.raises(PermissionDeniedError, match="lacks the 'write' scope"):
                reader.prompts.register("p", "hi")
            admin.tokens.revoke(reader_token.id)
            with pytest.raises(AuthenticationError, match="revoked"):
                reader.prompts.list()
            reader.close()

            # The CLI talks to the same server with --url and --token, with the same exit codes.
            remote = ["--url", url, "prompts", "register", "p", "--template", "hi", "--json"]
            made = _run([*remote[:2], "--token", admin_token, *remote[2:]], env, tmp_path)
            assert made.returncode == 0, made.stderr
            assert json.loads(made.stdout)["ref"] == "p@1"
            denied = _run(remote, env, tmp_path)
            assert denied.returncode == 2 and "token is required" in denied.stderr
            assert len(denied.stderr.strip().splitlines()) == 1
        finally:
            anonymous.close()
            admin.close()


def test_real_server_on_postgres(tmp_path, postgres_url, sk_model):
    model, x = sk_model
    env = stoa_env(tmp_path / "home", STOA_DATABASE_URL=postgres_url)
    csv = tmp_path / "train.csv"
    csv.write_text("a,b,label\n1,2,0\n3,4,1\n")
    with running_server(tmp_path, env) as url:
        client = HttpClient(url)
        try:
            data = client.datasets.register("train", csv)
            run = client.runs.create("fit", inputs=[data.ref])
            info = client.models.log("churn", model, run_id=run.id, datasets=[data.ref])
            np.testing.assert_array_equal(client.models.load(info.ref).predict(x), model.predict(x))
            assert {n.ref for n in client.datasets.lineage("train").downstream} == {
                run.id,
                "churn@1",
            }

            # Concurrent writers through the server still get unique, gap-free numbers.
            errors: list[BaseException] = []

            def register(i: int) -> None:
                one = HttpClient(url)
                try:
                    one.prompts.register("p", f"template {i}")
                except BaseException as exc:  # reported below
                    errors.append(exc)
                finally:
                    one.close()

            threads = [threading.Thread(target=register, args=(i,)) for i in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT_S)
            assert not errors
            assert [v.version for v in client.prompts.versions("p")] == [1, 2, 3, 4, 5, 6]
        finally:
            client.close()
    # The data lives in PostgreSQL, not in the home's SQLite file.
    assert not (tmp_path / "home" / "stoa.db").exists()


def test_http_client_tracks_runs_against_a_real_server(tmp_path):
    home = tmp_path / "home"
    with running_server(tmp_path, stoa_env(home)) as url:
        client = stoa.Client(url=url)
        try:
            with client.runs.start("remote", params={"lr": 0.01}, flush_every=500) as run:
                for step in range(1200):  # three batches over HTTP
                    run.log_metric("loss", 1 / (step + 1))
                report = tmp_path / "notes.md"
                report.write_text("# done\n")
                run.log_artifact(report)
            detail = client.runs.get(run.id)
            assert detail.info.status == "finished" and detail.params == {"lr": "0.01"}
            assert detail.metrics == {"loss": 1 / 1200} and detail.environment["python"]
            assert detail.artifacts[0]["path"] == "notes.md"
            assert len(client.runs.metric_history(run.id, "loss")) == 1200
            found = client.runs.search(params={"lr": "0.01"}, metrics=["loss<0.01"])
            assert [r.info.id for r in found] == [run.id]
            with pytest.raises(stoa.ConflictError, match="only running runs"):
                client.runs.log_batch(run.id, metrics=[{"key": "late", "value": 1.0}])
        finally:
            client.close()


def test_http_client_builds_a_knowledge_base_on_a_real_server(tmp_path):
    """Files are read by the client and sent as bytes; the same summary comes back."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Deploy\n\nShip behind a canary.\n")
    (docs / "b.md").write_text("# Billing\n\nInvoices go out monthly.\n")
    with running_server(tmp_path, stoa_env(tmp_path / "home")) as url:
        client = stoa.Client(url=url)
        try:
            client.kbs.create("docs")
            first = client.kbs.ingest("docs", [docs])
            assert first["documents"]["added"] == 2 and first["version"] == 1
            (docs / "b.md").unlink()
            synced = client.kbs.ingest("docs", [docs], sync=True)
            assert synced["documents"] == {"added": 0, "changed": 0, "unchanged": 1,
                                           "removed": 1, "failed": 0}  # fmt: skip
            hits = client.kbs.query("docs", "canary", k=1, mode="lexical")
            assert hits[0]["uri"] == (docs / "a.md").resolve().as_uri()
            with pytest.raises(InvalidInputError, match="runs only in-process"):
                client.kbs.query("docs", "canary", reranker=str(tmp_path))
            with pytest.raises(NotFoundError, match="no knowledge base"):
                client.kbs.show("nope")
        finally:
            client.close()


def test_several_workers_share_one_store(tmp_path, skops_file):
    """`--workers 2`: writes through one process are read through the other at once, and
    concurrent registrations keep gap-free version numbers."""
    home = tmp_path / "home"
    with running_server(tmp_path, stoa_env(home), "127.0.0.1", "--workers", "2") as url:
        errors: list[BaseException] = []

        def register(i: int) -> None:
            try:
                client = HttpClient(url)
                client.prompts.register("p", f"version {i} says {{{{ x }}}}")
                client.close()
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=register, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        client = HttpClient(url)
        versions = [v.version for v in client.prompts.versions("p")]
        assert versions == list(range(1, 13))
        seen = {httpx.get(f"{url}/api/v1/prompts/p@12").json()["version"] for _ in range(20)}
        assert seen == {12}
        client.close()
