"""bingo: an OpenAI-compatible API in front of Microsoft Copilot (and the retired ChatHub).

Importing the package is cheap on purpose: gunicorn's master reads `bingo.config`
(for BINGO_THREADS) and must not load Flask, requests and websocket-client into a
process that never serves a request; `create_app` imports them in the worker.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .config import Settings

if TYPE_CHECKING:
    from flask import Flask

__version__ = "1.0.0"

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the gateway; tests pass their own Settings, gunicorn reads the environment."""
    from flask import Flask

    from . import routes
    from .errors import register_error_handlers
    from .state import EXTENSION, open_store

    settings = settings or Settings.from_env(os.environ)
    _configure_logging(settings)
    app = Flask(__name__)
    app.config["BINGO"] = settings
    app.extensions[EXTENSION] = open_store(settings)  # fails start-up naming REDIS_URL
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.url_map.strict_slashes = False
    app.wsgi_app = _MergeSlashes(app.wsgi_app)  # type: ignore[method-assign]
    register_error_handlers(app)
    routes.register(app)
    if not settings.api_keys:
        log.warning("BINGO_API_KEYS is not set: the API is open to anyone who can reach it.")
    log.info("bingo %s ready: %r", __version__, settings)
    return app


class _MergeSlashes:
    """Collapse `//` in the path before routing, instead of Werkzeug's 308 redirect.

    openai 0.28 builds `//chat/completions` from a base URL ending in `/`, and a
    redirected POST loses its body in many clients; answer it directly.
    """

    def __init__(self, app: Callable) -> None:
        self._app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if "//" in path:
            environ["PATH_INFO"] = re.sub(r"/{2,}", "/", path)
        return self._app(environ, start_response)


def _configure_logging(settings: Settings) -> None:
    logging.getLogger("bingo").setLevel(settings.log_level)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
