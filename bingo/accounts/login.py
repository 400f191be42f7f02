"""`python -m bingo login`: the OAuth device-code sign-in (RFC 8628) with the Copilot
web app's client id, printing one line for COPILOT_ACCOUNTS_FILE.

stdout gets exactly that JSON line and nothing else, so `>> accounts.jsonl` works;
the instructions and the outcome go to stderr. Exit codes:
0 signed in; 1 the identity service refused or could not be reached; 2 usage or
configuration error; 3 the code expired before the sign-in finished; 4 the sign-in
was declined; 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from ..config import ConfigError, Settings
from ..errors import BingoError
from ..upstream import transport
from .exchange import CLIENT_ID, REFUSALS, SCOPE, refusal_reason
from .roster import DEFAULT_NAME, NAME

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL = 5.0  # seconds between polls when the service names none (RFC 8628 3.2)
SLOW_DOWN_STEP = 5.0  # seconds added per slow_down (RFC 8628 3.5) unless it names an interval
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_EXPIRED, EXIT_DECLINED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class LoginFailed(Exception):
    """The sign-in cannot finish; `exit_code` says why (see the module docstring)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class DeviceCode:
    device_code: str = field(repr=False)  # redeemable for tokens while the sign-in is pending
    user_code: str
    verification_uri: str
    expires_in: float
    interval: float


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    """Run `python -m bingo ARGS`; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        sys.stderr.write(f"bingo login: {exc}\n")
        return EXIT_USAGE
    try:
        refresh_token = sign_in(settings, sys.stderr)
    except LoginFailed as exc:
        sys.stderr.write(f"bingo login: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("bingo login: cancelled; nothing was saved.\n")
        return EXIT_INTERRUPTED
    sys.stdout.write(json.dumps({"name": args.name, "refresh_token": refresh_token}) + "\n")
    sys.stdout.flush()
    sys.stderr.write(
        f"Signed in. Add the line above to COPILOT_ACCOUNTS_FILE as account {args.name!r} "
        "(or set COPILOT_REFRESH_TOKEN to its refresh_token). It is a secret: keep it like a password.\n"
    )
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bingo", description="bingo's command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    login = commands.add_parser(
        "login", help="sign a Microsoft account in to Copilot (device code) and print its accounts-file line",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    login.add_argument("--name", type=_account_name, default=DEFAULT_NAME, help="the account's name in the file")
    return parser


def _account_name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise argparse.ArgumentTypeError("a name is 1-64 letters, digits, '.', '_' or '-'")
    return value


def sign_in(
    settings: Settings, say: TextIO, *, sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Show a code, wait for the user to enter it, and return the refresh token.

    Raises LoginFailed (with its exit code) on every outcome but success.
    """
    code = request_code(settings)
    minutes = max(1, round(code.expires_in / 60))
    say.write(
        f"To sign in, open {code.verification_uri} in a browser and enter the code {code.user_code} "
        f"(it expires in {minutes} min).\nWaiting for the sign-in to finish...\n"
    )
    say.flush()
    return poll(settings, code, sleep=sleep, clock=clock)


def request_code(settings: Settings) -> DeviceCode:
    """Ask the device-code endpoint for a code to show the user."""
    body = _post(settings, "/oauth2/v2.0/devicecode", {"client_id": CLIENT_ID, "scope": SCOPE}, "Asking for a sign-in code")
    if "error" in body:
        raise LoginFailed(f"the identity service refused to start a sign-in ({refusal_reason(400, body)}); check BINGO_LOGIN_URL.")
    try:
        return DeviceCode(
            str(body["device_code"]), str(body["user_code"]), str(body["verification_uri"]),
            float(body["expires_in"]), _interval(body.get("interval"), DEFAULT_INTERVAL),
        )
    except (KeyError, TypeError, ValueError):
        raise LoginFailed("the identity service's sign-in code answer lacks a field; check BINGO_LOGIN_URL.") from None


def poll(
    settings: Settings, code: DeviceCode, *, sleep: Callable[[float], None], clock: Callable[[], float],
) -> str:
    """Poll the token endpoint every `interval` until the user signs in or the code expires."""
    deadline = clock() + code.expires_in
    interval = code.interval
    form = {"client_id": CLIENT_ID, "grant_type": DEVICE_GRANT, "device_code": code.device_code}
    while clock() + interval < deadline:  # bounded: interval > 0 and the deadline is fixed
        sleep(interval)
        body = _post(settings, "/oauth2/v2.0/token", form, "Checking the sign-in")
        error = body.get("error")
        if error is None:
            return _refresh_token(body)
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval = _interval(body.get("interval"), interval + SLOW_DOWN_STEP)
            continue
        raise _poll_failure(error, body)
    raise LoginFailed("the code expired before the sign-in finished; run `python -m bingo login` again.", EXIT_EXPIRED)


def _poll_failure(error: object, body: dict) -> LoginFailed:
    if error == "expired_token":
        return LoginFailed("the code expired before the sign-in finished; run `python -m bingo login` again.", EXIT_EXPIRED)
    if error in ("authorization_declined", "access_denied"):
        return LoginFailed("the sign-in was declined in the browser; nothing was saved.", EXIT_DECLINED)
    return LoginFailed(f"the identity service refused the sign-in ({refusal_reason(400, body)}).")


def _refresh_token(body: dict) -> str:
    value = body.get("refresh_token")
    if not isinstance(value, str) or not value:
        raise LoginFailed("the identity service signed you in but sent no refresh token (was offline_access granted?).")
    return value


def _interval(value: object, default: float) -> float:
    """A positive number of seconds from the service, else `default`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 600:
        return float(value)
    return default


def _post(settings: Settings, path: str, form: dict[str, str], what: str) -> dict:
    """POST a form to the identity service; an OAuth error body comes back as a dict too."""
    try:
        reply = transport.http_json(
            settings, "copilot", "POST", settings.login_url + path, {"Accept": "application/json"}, what,
            form=form, accept=REFUSALS,
        )
    except BingoError as exc:
        raise LoginFailed(f"{exc.message} Check BINGO_LOGIN_URL and the network (HTTPS_PROXY).") from exc
    if not isinstance(reply.body, dict):
        raise LoginFailed(f"{what}: the identity service answered HTTP {reply.status} without JSON; check BINGO_LOGIN_URL.")
    if reply.status >= 400 and "error" not in reply.body:
        raise LoginFailed(f"{what}: the identity service answered HTTP {reply.status}; check BINGO_LOGIN_URL.")
    return reply.body
