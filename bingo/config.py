"""Settings: the one place that reads the environment.

Every value is parsed and bounded here, so a bad deployment fails at start with a
message naming the variable instead of failing on the first request.
"""
from __future__ import annotations

import math
import os.path
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit, urlunsplit

DEFAULT_CREATE_URL = "https://www.bing.com/turing/conversation/create"
DEFAULT_CHATHUB_URL = "wss://sydney.bing.com/sydney/ChatHub"
DEFAULT_COPILOT_URL = "https://copilot.microsoft.com"
# The Microsoft identity platform tenant that signs in personal (consumer) accounts;
# refresh and device-code sign-in go to {this}/oauth2/v2.0/... (protocol note 3.2).
DEFAULT_LOGIN_URL = "https://login.microsoftonline.com/consumers"
# What the Copilot Android app sends (gpt4free CopilotApp, foxroute): the presentation
# that plain HTTP stacks can use in 2026, with no browser check.
APP_USER_AGENT = "CopilotNative/30.0.440505001-prod (Android 14; Google; Pixel 8 Pro)"
# A desktop browser, for the web presentation (COPILOT_COOKIE); Cloudflare binds a
# cf_clearance cookie to the exact User-Agent that earned it, so set COPILOT_USER_AGENT.
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36 Edg/142.0.0.0"
)
UPSTREAMS = ("copilot", "chathub")


class ConfigError(ValueError):
    """A setting is missing or malformed; raised at start, never rendered as HTTP."""


@dataclass(frozen=True)
class Settings:
    """Everything the gateway needs to know about its deployment."""

    upstream: str = "copilot"  # serves the seed's model names and every unknown name
    bing_cookie: str = field(default="", repr=False)  # Cookie header for bing.com
    create_url: str = DEFAULT_CREATE_URL  # ChatHub conversation-create (GET)
    chathub_url: str = DEFAULT_CHATHUB_URL  # ChatHub websocket
    copilot_url: str = DEFAULT_COPILOT_URL  # Copilot base; websocket derived from it
    copilot_cookie: str = field(default="", repr=False)  # Cookie header for Copilot
    copilot_access_token: str = field(default="", repr=False)  # MSAL token, optional
    copilot_refresh_token: str = field(default="", repr=False)  # exchanged for access tokens
    copilot_accounts_file: str = ""  # JSON Lines, one account a line (bingo/accounts/roster.py)
    login_url: str = DEFAULT_LOGIN_URL  # identity tenant for token refresh and `python -m bingo login`
    copilot_user_agent: str = ""  # "" = the presentation's default (app or browser)
    copilot_max_chars: int = 10_000  # Copilot's limit for one message, history included
    connect_timeout: float = 15.0  # seconds to create + open + handshake
    idle_timeout: float = 120.0  # seconds of upstream silence that end a turn
    total_timeout: float = 600.0  # seconds one turn may last in all
    keepalive_seconds: float = 15.0  # SSE comment cadence while upstream is silent
    locale: str = "en-US"  # ChatHub locale/market
    history_chars: int = 32_000  # ChatHub: budget for earlier messages sent as context
    max_answer_chars: int = 1_000_000  # longer answers end with finish_reason "length"
    max_body_bytes: int = 4 * 1024 * 1024  # larger request bodies get 413
    max_messages: int = 2_048  # requests with more messages get 400
    write_timeout: float = 60.0  # seconds a blocked write to a client may last; then it is cut
    request_read_timeout: float = 10.0  # seconds a request's head and body may take to arrive
    api_keys: frozenset[str] = field(default=frozenset(), repr=False)  # empty: open
    cors_origin: str = "*"  # Access-Control-Allow-Origin
    proxy: str = field(default="", repr=False)  # outbound proxy for both legs
    no_proxy: str = ""  # hosts that bypass the proxy
    ca_bundle: str = ""  # CA file for upstream TLS; "" = certifi's bundle, as requests uses
    threads: int = 256  # gunicorn threads per process (gunicorn.conf.py reads it here)
    max_inflight: int = 248  # answers in flight per process; past it 503 (default: threads less a reserve)
    chunk_message: bool = True  # stream chunks repeat their text in `message` (the seed's snippets)
    responses_kept: int = 1_000  # stored Responses API responses; the oldest are evicted
    redis_url: str = ""  # shared state across processes; "" = in this process (repr drops the password)
    key_rpm: int = 0  # answer requests a minute per API key; 0 = no limit
    fetch_images: bool = False  # image parts may be http(s) URLs, fetched by the gateway
    # Tests only, never read from the environment: their image server listens on 127.0.0.1.
    fetch_images_from_loopback: bool = False
    account_concurrency: int = 4  # turns at once per Copilot account
    account_rpm: int = 12  # turns per sliding minute per Copilot account
    queue_seconds: float = 20.0  # how long a request waits for an account with room; 0: not at all
    cooldown_seconds: float = 1_500.0  # a throttled account rests this long when Copilot says not
    admin_key: str = field(default="", repr=False)  # GET /v1/accounts; "" = no admin view
    log_level: str = "INFO"

    @property
    def copilot_presentation(self) -> str:
        """"web" with a browser cookie (as that browser), else the Android app's."""
        return "web" if self.copilot_cookie else "app"

    def __repr__(self) -> str:
        # Mirror and proxy URLs may carry credentials (user:pass@ or ?key=): the
        # start-up log shows where bingo connects, never how it authenticates.
        shown = (f"{f.name}={_redacted(getattr(self, f.name))!r}" for f in fields(self) if f.repr)
        return f"Settings({', '.join(shown)})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse settings from an environment mapping; raises ConfigError."""
        threads = _count(env, "BINGO_THREADS", 256)
        return cls(
            upstream=_choice(env, "BINGO_UPSTREAM", UPSTREAMS),
            bing_cookie=_cookie(env.get("BING_COOKIE", "")),
            create_url=_url(env, "BINGO_CREATE_URL", DEFAULT_CREATE_URL, ("http", "https")),
            chathub_url=_url(env, "BINGO_CHATHUB_URL", DEFAULT_CHATHUB_URL, ("ws", "wss")),
            copilot_url=_url(env, "BINGO_COPILOT_URL", DEFAULT_COPILOT_URL, ("http", "https")),
            copilot_cookie=_cookie(env.get("COPILOT_COOKIE", "")),
            copilot_access_token=env.get("COPILOT_ACCESS_TOKEN", "").strip(),
            copilot_refresh_token=_header_value(env, "COPILOT_REFRESH_TOKEN"),
            copilot_accounts_file=_readable_file(env, "COPILOT_ACCOUNTS_FILE"),
            login_url=_url(env, "BINGO_LOGIN_URL", DEFAULT_LOGIN_URL, ("http", "https")).rstrip("/"),
            copilot_user_agent=_header_value(env, "COPILOT_USER_AGENT"),
            copilot_max_chars=_count(env, "BINGO_COPILOT_MAX_CHARS", 10_000),
            connect_timeout=_seconds(env, "BINGO_CONNECT_TIMEOUT", 15.0),
            idle_timeout=_seconds(env, "BINGO_IDLE_TIMEOUT", 120.0),
            total_timeout=_seconds(env, "BINGO_TOTAL_TIMEOUT", 600.0),
            keepalive_seconds=_seconds(env, "BINGO_KEEPALIVE_SECONDS", 15.0),
            locale=_locale(env.get("BINGO_LOCALE", "en-US")),
            history_chars=_count(env, "BINGO_HISTORY_CHARS", 32_000),
            max_answer_chars=_count(env, "BINGO_MAX_ANSWER_CHARS", 1_000_000),
            max_body_bytes=_count(env, "BINGO_MAX_BODY_BYTES", 4 * 1024 * 1024),
            max_messages=_count(env, "BINGO_MAX_MESSAGES", 2_048),
            write_timeout=_seconds(env, "BINGO_WRITE_TIMEOUT", 60.0),
            request_read_timeout=_seconds(env, "BINGO_REQUEST_READ_TIMEOUT", 10.0),
            api_keys=frozenset(k.strip() for k in env.get("BINGO_API_KEYS", "").split(",") if k.strip()),
            cors_origin=env.get("BINGO_CORS_ORIGIN", "*").strip() or "*",
            proxy=_proxy(env),
            no_proxy=env.get("NO_PROXY", env.get("no_proxy", "")),
            ca_bundle=_ca_bundle(env),
            threads=threads,
            max_inflight=_max_inflight(env, threads),
            chunk_message=_flag(env, "BINGO_CHUNK_MESSAGE", True),
            responses_kept=_count(env, "BINGO_RESPONSES_KEPT", 1_000),
            redis_url=_redis_url(env),
            key_rpm=_count_or_off(env, "BINGO_KEY_RPM"),
            fetch_images=_flag(env, "BINGO_FETCH_IMAGES", False),
            account_concurrency=_count(env, "BINGO_ACCOUNT_CONCURRENCY", 4),
            account_rpm=_count(env, "BINGO_ACCOUNT_RPM", 12),
            queue_seconds=_seconds(env, "BINGO_QUEUE_SECONDS", 20.0, zero=True),
            cooldown_seconds=_seconds(env, "BINGO_COOLDOWN_SECONDS", 1_500.0),
            admin_key=_header_value(env, "BINGO_ADMIN_KEY"),
            log_level=_log_level(env.get("BINGO_LOG_LEVEL", "INFO")),
        )


def _redacted(value: object) -> object:
    """A URL without its user info, query and fragment; anything else unchanged."""
    if not isinstance(value, str) or "://" not in value:
        return value
    parts = urlsplit(value)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _cookie(value: str) -> str:
    """Accept a full Cookie header, or a bare `_U` token as most users copy it."""
    value = value.strip()
    if value and "=" not in value:
        return f"_U={value}"
    return value


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or default
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        wanted = " or ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"{name} must be a {wanted} URL with a host, not {value!r}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float, *, zero: bool = False) -> float:
    """A number of seconds, positive (or also 0 where `zero` allows "not at all")."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        wanted = "0 or a positive number" if zero else "a positive number"
        raise ConfigError(f"{name} must be {wanted} of seconds, not {raw!r}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) <= 0:
        raise ConfigError(f"{name} must be a positive whole number, not {raw!r}")
    return int(raw)


def _count_or_off(env: Mapping[str, str], name: str) -> int:
    """A whole number where 0 (the default) turns the limit off."""
    raw = env.get(name, "").strip()
    return 0 if raw in ("", "0") else _count(env, name, 0)


def _max_inflight(env: Mapping[str, str], threads: int) -> int:
    """BINGO_MAX_INFLIGHT, at most BINGO_THREADS; by default a quarter of the threads,
    at most 8, stay free for health checks and short requests while answers stream."""
    value = _count(env, "BINGO_MAX_INFLIGHT", threads - min(8, threads // 4))
    if value > threads:
        raise ConfigError(f"BINGO_MAX_INFLIGHT must be at most BINGO_THREADS ({threads}), not {value}")
    return value


def _locale(raw: str) -> str:
    value = raw.strip()
    language, _, region = value.partition("-")
    if not (language.isalpha() and region.isalpha() and len(region) == 2):
        raise ConfigError(f"BINGO_LOCALE must look like 'en-US', not {raw!r}")
    return value


def _proxy(env: Mapping[str, str]) -> str:
    """The outbound proxy, read the way curl and requests read it."""
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        value = env.get(name, "").strip()
        if value:
            parts = urlsplit(value if "://" in value else f"http://{value}")
            if parts.scheme.startswith("socks"):
                # Neither requests nor websocket-client speaks SOCKS without extra
                # packages; refusing at start beats failing on every request.
                raise ConfigError(f"{name}: SOCKS proxies are not supported; use an HTTP(S) proxy (http://host:port)")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"{name} must be a proxy URL such as http://host:port")
            return parts.geturl()
    return ""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
        raise ConfigError(f"{name} must be 1 or 0, not {raw!r}")
    return raw in ("1", "true", "yes", "on")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip()
    value = raw.lower() or choices[0]
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return value


def _header_value(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if any(c in value for c in "\r\n\x00"):
        raise ConfigError(f"{name} must be one line of text")
    return value


def _ca_bundle(env: Mapping[str, str]) -> str:
    """The CA file requests and OpenSSL users point at, checked to exist now."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        value = env.get(name, "").strip()
        if value:
            if not os.path.isfile(value):
                raise ConfigError(f"{name} must name a readable CA bundle file, not {value!r}")
            return value
    return ""


def _redis_url(env: Mapping[str, str]) -> str:
    """REDIS_URL as Heroku and redis-py write it: redis:// or rediss://[user:password@]host[:port][/db]."""
    value = env.get("REDIS_URL", "").strip()
    if not value:
        return ""
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    db = parts.path.lstrip("/")
    if parts.scheme not in ("redis", "rediss") or not parts.hostname or not port_ok or not (db == "" or db.isdigit()):
        shown = f"{parts.scheme}://{parts.hostname or ''}..." if "://" in value else "a bare host"  # no password
        raise ConfigError(f"REDIS_URL must look like redis://[:password@]host:6379[/db] or rediss://..., not {shown}")
    return value


def _readable_file(env: Mapping[str, str], name: str) -> str:
    """A file path checked to name a file now; its content is parsed by its owner."""
    value = env.get(name, "").strip()
    if value and not os.path.isfile(value):
        raise ConfigError(f"{name} must name a readable file, not {value!r}")
    return value


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"BINGO_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {raw!r}")
    return value
