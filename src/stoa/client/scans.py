"""``client.scans``: scan model files under the active policy without storing anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from stoa.client._operation import Resource, Upload, operation
from stoa.core.errors import InvalidInputError
from stoa.govern.models import check_license


class Scans(Resource):
    name = "scans"

    @operation("POST", "/scans", scope="write")
    def create(
        self,
        path: Annotated[Path | str, Upload()],
        *,
        license: str | None = None,
        require_license: bool = False,
    ) -> dict[str, Any]:
        """The JSON scan report of a file or folder under this side's policy; nothing is
        stored (``stoa scan`` reads local files without any client). Over HTTP it needs
        ``write``: the server reads and parses every uploaded byte."""
        path = Path(path)
        if not path.exists():
            raise InvalidInputError(f"{path} does not exist", field="path")
        report = self._local.scan_gate.report(
            path, license=check_license(license), require_license=require_license
        )
        return report.to_dict()
