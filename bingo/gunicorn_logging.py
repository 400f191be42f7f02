"""gunicorn's logger, with credentials redacted from every line it writes.

gunicorn's own warnings quote request lines ("Invalid request from ...: GET
/v1/chat/completions?api-key=..."), and clients do put keys in query strings; the
access log is configured to write the path without its query (`%(U)s`), and this
redacts anything else that slips into a line.
"""
from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from .redact import redact


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


class RedactingLogger(Logger):
    """gunicorn's Logger; each of its loggers passes lines through `redact`."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.addFilter(_Redacting())
