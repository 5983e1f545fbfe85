"""The HTTP service: FastAPI application, API keys and scopes, HMA-compatible routes.

    from lightkeeper.service import create_app
    app = create_app()          # settings from the environment (LIGHTKEEPER_DATABASE_URL …)

Run it with ``lightkeeper serve``.
"""

from __future__ import annotations

from lightkeeper.service.app import create_app
from lightkeeper.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
