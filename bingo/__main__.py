"""`python -m bingo login`: sign an account in (see bingo/accounts/login.py).

The gateway itself runs under gunicorn (Procfile), not from here.
"""
from __future__ import annotations

import sys

from .accounts.login import main

if __name__ == "__main__":
    sys.exit(main())
