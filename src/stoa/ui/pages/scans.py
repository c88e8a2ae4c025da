"""Dashboard pages: scans (filled in by its own change)."""

from __future__ import annotations

from fastapi import APIRouter

from stoa.ui.render import UiRoute

router = APIRouter(route_class=UiRoute, include_in_schema=False)
