"""WSGI entry point for gunicorn (`gunicorn app:app`)."""
from bingo import create_app

app = create_app()
