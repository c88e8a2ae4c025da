"""The FastAPI application and its routes under ``/api/v1``."""

from stoa.serve.server.app import create_app

__all__ = ["create_app"]
