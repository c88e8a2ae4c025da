"""``client.prompts``: versioned Jinja2 templates, rendered in a sandbox."""

from __future__ import annotations

from typing import Any

from stoa.client._operation import operation
from stoa.client.registry import Versions
from stoa.govern import prompts
from stoa.govern.types import VersionInfo


class Prompts(Versions):
    name = "prompts"
    kind = "prompt"

    @operation("POST", "/prompts", scope="write", status=201)
    def register(
        self,
        name: str,
        template: str,
        *,
        variables: list[str] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> VersionInfo:
        """A new version of a template; its variables are read from it unless declared."""
        local = self._local
        return prompts.register_prompt(
            local.registry, name, template, actor=local.actor, variables=variables,
            description=description, tags=tags, metadata=metadata,
        )  # fmt: skip

    @operation("POST", "/prompts/{ref}/render", scope="read", envelope="text")
    def render(self, ref: str, values: dict[str, Any] | None = None) -> str:
        """The template filled in with ``values``; a missing variable is refused by name."""
        return prompts.render_prompt(self._local.registry, ref, values or {})
