"""The OpenAI Responses API (`POST /v1/responses` and every path ending in `/responses`)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("responses", __name__)
