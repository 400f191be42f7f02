"""The page a person sees at `/`: a small self-contained chat page (no build, no CDN)."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response

bp = Blueprint("page", __name__)

_PAGE = Path(__file__).with_name("page.html")


@bp.get("/")
def index() -> Response:
    return Response(_PAGE.read_bytes(), mimetype="text/html")
