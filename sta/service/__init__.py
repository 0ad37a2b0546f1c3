"""The query service: a FastAPI app over ``sta.service.search`` (search, patients,
thumbnails) with API-key authentication, region entitlements, an audit log of
every search, and the STA Standard search page served at ``/``.

``create_app(stores, db)`` builds the app; ``sta serve`` runs it with uvicorn.
"""

from sta.service.app import create_app

__all__ = ["create_app"]
