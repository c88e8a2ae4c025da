"""``client.solutions``: versioned pipelines of rules, models, retrieval and generation.

A solution is a registry kind, so listing, versions, aliases, tags and archiving come
from ``Versions``; this module adds what is particular to it: registering a YAML spec
(validated, every reference resolved), running a version with a trace, its schema,
its text and a diff between versions.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from stoa.client._operation import operation
from stoa.client.registry import Versions
from stoa.govern.types import VersionInfo


class Registered(BaseModel):
    version: VersionInfo
    warnings: list[str]


class Solutions(Versions):
    name = "solutions"
    kind = "solution"

    def _environment(self) -> Any:
        """One per set of stores: models, plans and providers load once per process."""
        return self._local.solutions

    @operation("POST", "/solutions", scope="write", status=201)
    def register(
        self,
        spec: str,
        *,
        name: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> Registered:
        """A new version from the YAML text ``spec``; errors name the line and the fix."""
        from stoa.develop.solution.solutions import register_solution

        local = self._local
        info, warnings = register_solution(
            local.registry,
            local.kbs,
            local.settings,
            spec,
            actor=local.actor,
            name=name,
            description=description,
            tags=tags,
        )
        return Registered(version=info, warnings=warnings)

    @operation("POST", "/solutions/{ref}/run", scope="read")
    def run(
        self, ref: str, input: Any, *, overrides: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """The output, the path taken and a trace with one span per step. A step that
        fails gives ``status: "error"`` and the trace up to it, not an exception."""
        from stoa.develop.solution.runner import run_solution

        return run_solution(self._environment(), ref, input, overrides=overrides).to_dict()

    @operation(
        "POST",
        "/solutions/{ref}/eval",
        scope="write",
        local_only={"ray": "--ray runs on the stores, not through a Stoa server"},
    )
    def evaluate(
        self,
        ref: str,
        dataset: str,
        *,
        judges: list[str] | None = None,
        sample: int | None = None,
        seed: int = 0,
        overrides: dict[str, dict[str, Any]] | None = None,
        ray: bool | str = False,
    ) -> dict[str, Any]:
        """Run every row of ``dataset`` (JSONL text) and score the answers with each judge
        (``embedding``, ``llm:PROVIDER[:MODEL]``); logged as a run. ``ray`` runs and
        judges the rows in partitions on a Ray cluster (``True``: ``RAY_ADDRESS`` or a
        local one; a string: its address), with the same report."""
        from stoa.develop.solution.evaluate import evaluate_solution

        local = self._local
        env = self._environment()
        chosen = ["embedding"] if judges is None else judges
        mapper = None
        if ray:
            from stoa.serve.ray.cluster import address_of, connect, worker_env
            from stoa.serve.ray.data import eval_partitions

            version = env.version("solution", ref).ref  # an unknown ref fails before Ray starts
            connect(local.settings, address_of(ray))
            mapper = eval_partitions(worker_env(local.settings), version, chosen,
                                     overrides=overrides)  # fmt: skip
        return evaluate_solution(
            env, ref, dataset, chosen, actor=local.actor, sample=sample, seed=seed,
            overrides=overrides, mapper=mapper,
        )  # fmt: skip

    @operation("GET", "/solutions/{ref}/spec", scope="read", envelope="text")
    def spec(self, ref: str) -> str:
        """The version's YAML, as registered."""
        from stoa.develop.solution.solutions import spec_text

        return spec_text(self._local.registry, ref)

    @operation("GET", "/solutions/{ref}/diff", scope="read", envelope="text")
    def diff(self, ref: str, against: str) -> str:
        """A unified diff from ``against`` to ``ref``."""
        from stoa.develop.solution.solutions import diff_versions

        return diff_versions(self._local.registry, against, ref)

    @operation("GET", "/solutions/-/schema", scope="read")
    def schema(self) -> dict[str, Any]:
        """The spec's JSON Schema, for editors and CI."""
        from stoa.develop.solution.spec import json_schema

        return json_schema()
