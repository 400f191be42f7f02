"""The account pool's place in the app, and `GET /v1/accounts`, the operator's view of it.

`register` builds the process's one AccountPool at start (the roster, its tokens and
the state store the app already holds) and serves the view. The view needs
`Authorization: Bearer <BINGO_ADMIN_KEY>`, a key of its own (an API key is not
enough), and does not exist (404) while BINGO_ADMIN_KEY is unset. It shows names,
kinds, states, counts and redacted errors: never a cookie or a token.
"""
from __future__ import annotations

import hmac

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import NotFound

from .accounts import Account, standing
from .accounts.pool import AccountPool
from .accounts.roster import Roster
from .accounts.tokens import Tokens
from .errors import AuthenticationFailed
from .sse import dumps
from .state import EXTENSION

bp = Blueprint("admin", __name__)

POOL = "bingo.pool"


def current_pool() -> AccountPool:
    return current_app.extensions[POOL]


@bp.get("/v1/accounts")
def list_accounts() -> Response:
    pool = current_pool()
    _check_admin_key(pool.settings.admin_key)
    body = {"object": "list", "data": [_describe(pool, account) for account in pool.roster.accounts()]}
    return Response(dumps(body), mimetype="application/json")


def _check_admin_key(admin_key: str) -> None:
    if not admin_key:
        raise NotFound()
    auth = request.headers.get("Authorization", "")
    offered = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if not hmac.compare_digest(offered.encode(), admin_key.encode()):
        raise AuthenticationFailed(
            "Missing or incorrect admin key. Send 'Authorization: Bearer <key>' with the key in BINGO_ADMIN_KEY."
        )


def _describe(pool: AccountPool, account: Account) -> dict[str, object]:
    """One account as the operator sees it: no credential, ever."""
    store = pool.store
    usage = store.usage(account.name)
    expires_at = pool.tokens.expires_at(account)
    return {
        "name": account.name,
        "kind": account.kind,
        "state": standing.describe(standing.current(store, account)),
        "in_flight": usage.in_flight,
        "last_minute": usage.last_minute,
        "last_error": store.last_error(account.name) or None,
        "token_expires_at": standing.iso(expires_at) if expires_at is not None else None,
    }


def register(app: Flask) -> None:
    """Build the process's account pool and serve its view."""
    settings = app.config["BINGO"]
    store = app.extensions[EXTENSION]
    app.extensions[POOL] = AccountPool(settings, store, Roster(settings), Tokens(settings, store))
    app.register_blueprint(bp)
