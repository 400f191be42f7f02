"""Settings.from_env: defaults, parsing, bounds, and secrets kept out of repr."""

from __future__ import annotations

import dataclasses

import pytest

from bingo.config import (
    DEFAULT_CHATHUB_URL,
    DEFAULT_COPILOT_URL,
    DEFAULT_CREATE_URL,
    DEFAULT_LOGIN_URL,
    ConfigError,
    Settings,
)

TIMEOUT_VARIABLES = {
    "BINGO_CONNECT_TIMEOUT": "connect_timeout",
    "BINGO_IDLE_TIMEOUT": "idle_timeout",
    "BINGO_TOTAL_TIMEOUT": "total_timeout",
    "BINGO_KEEPALIVE_SECONDS": "keepalive_seconds",
    "BINGO_WRITE_TIMEOUT": "write_timeout",
    "BINGO_REQUEST_READ_TIMEOUT": "request_read_timeout",
}
COUNT_VARIABLES = {
    "BINGO_HISTORY_CHARS": "history_chars",
    "BINGO_MAX_BODY_BYTES": "max_body_bytes",
    "BINGO_MAX_MESSAGES": "max_messages",
    "BINGO_RESPONSES_KEPT": "responses_kept",
}


def config_error(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    return info.value


# -- defaults ----------------------------------------------------------------------


def test_from_env_empty_environment_gives_documented_defaults():
    settings = Settings.from_env({})

    assert settings == Settings()
    assert dataclasses.asdict(settings) == {
        "upstream": "copilot",
        "bing_cookie": "",
        "create_url": "https://www.bing.com/turing/conversation/create",
        "chathub_url": "wss://sydney.bing.com/sydney/ChatHub",
        "copilot_url": "https://copilot.microsoft.com",
        "copilot_cookie": "",
        "copilot_access_token": "",
        "copilot_refresh_token": "",
        "copilot_accounts_file": "",
        "login_url": "https://login.microsoftonline.com/consumers",
        "copilot_user_agent": "",
        "copilot_max_chars": 10_000,
        "connect_timeout": 15.0,
        "idle_timeout": 120.0,
        "total_timeout": 600.0,
        "keepalive_seconds": 15.0,
        "locale": "en-US",
        "history_chars": 32_000,
        "max_answer_chars": 1_000_000,
        "max_body_bytes": 4 * 1024 * 1024,
        "max_messages": 2_048,
        "write_timeout": 60.0,
        "request_read_timeout": 10.0,
        "api_keys": frozenset(),
        "cors_origin": "*",
        "proxy": "",
        "no_proxy": "",
        "ca_bundle": "",
        "threads": 256,
        "max_inflight": 248,
        "chunk_message": True,
        "responses_kept": 1_000,
        "redis_url": "",
        "key_rpm": 0,
        "fetch_images": False,
        "fetch_images_from_loopback": False,
        "account_concurrency": 4,
        "account_rpm": 12,
        "queue_seconds": 20.0,
        "cooldown_seconds": 1500.0,
        "admin_key": "",
        "log_level": "INFO",
    }


def test_settings_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().locale = "de-DE"  # type: ignore[misc]


@pytest.mark.parametrize(
    "name",
    ["PORT", "WEB_CONCURRENCY"],
    ids=["port", "web-concurrency"],
)
def test_from_env_ignores_gunicorn_variables(name):
    assert Settings.from_env({name: "not a number"}) == Settings()


# -- cookies and tokens ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1AbCdEf-token", "_U=1AbCdEf-token"),
        ("  1AbCdEf-token\n", "_U=1AbCdEf-token"),
        ("_U=1AbCdEf; SRCHHPGUSR=CW=1", "_U=1AbCdEf; SRCHHPGUSR=CW=1"),
        (" _U=abc ", "_U=abc"),
        ("", ""),
        ("   ", ""),
    ],
    ids=[
        "bare-token",
        "bare-token-padded",
        "full-header",
        "full-header-padded",
        "empty",
        "blank",
    ],
)
def test_from_env_bing_cookie_accepts_header_or_bare_u_token(raw, expected):
    assert Settings.from_env({"BING_COOKIE": raw}).bing_cookie == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("tok", "_U=tok"), ("a=1; b=2", "a=1; b=2")],
    ids=["bare-token", "full-header"],
)
def test_from_env_copilot_cookie_parsed_like_bing_cookie(raw, expected):
    assert Settings.from_env({"COPILOT_COOKIE": raw}).copilot_cookie == expected


def test_from_env_copilot_access_token_is_stripped():
    settings = Settings.from_env({"COPILOT_ACCESS_TOKEN": "  eyJ0eXAi.abc.def \n"})
    assert settings.copilot_access_token == "eyJ0eXAi.abc.def"


# -- upstream URLs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        (
            "BINGO_CREATE_URL",
            "create_url",
            "http://127.0.0.1:8080/turing/conversation/create",
        ),
        ("BINGO_CREATE_URL", "create_url", "https://bing.example/create"),
        ("BINGO_CHATHUB_URL", "chathub_url", "ws://127.0.0.1:8080/sydney/ChatHub"),
        ("BINGO_CHATHUB_URL", "chathub_url", "wss://sydney.example/sydney/ChatHub"),
        ("BINGO_COPILOT_URL", "copilot_url", "http://127.0.0.1:8081"),
        ("BINGO_LOGIN_URL", "login_url", "http://127.0.0.1:8082/consumers"),
    ],
    ids=["create-http", "create-https", "chathub-ws", "chathub-wss", "copilot-http", "login-http"],
)
def test_from_env_url_override_is_used(name, field, value):
    assert getattr(Settings.from_env({name: value}), field) == value


@pytest.mark.parametrize(
    ("name", "field", "default"),
    [
        ("BINGO_CREATE_URL", "create_url", DEFAULT_CREATE_URL),
        ("BINGO_CHATHUB_URL", "chathub_url", DEFAULT_CHATHUB_URL),
        ("BINGO_COPILOT_URL", "copilot_url", DEFAULT_COPILOT_URL),
        ("BINGO_LOGIN_URL", "login_url", DEFAULT_LOGIN_URL),
    ],
    ids=["create", "chathub", "copilot", "login"],
)
def test_from_env_blank_url_falls_back_to_default(name, field, default):
    assert getattr(Settings.from_env({name: "   "}), field) == default


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BINGO_CREATE_URL", "wss://www.bing.com/turing/conversation/create"),
        ("BINGO_CREATE_URL", "ftp://www.bing.com/create"),
        ("BINGO_CREATE_URL", "www.bing.com/turing/conversation/create"),
        ("BINGO_CREATE_URL", "https://"),
        ("BINGO_CHATHUB_URL", "https://sydney.bing.com/sydney/ChatHub"),
        ("BINGO_CHATHUB_URL", "sydney.bing.com/sydney/ChatHub"),
        ("BINGO_CHATHUB_URL", "wss:///sydney/ChatHub"),
        ("BINGO_COPILOT_URL", "wss://copilot.microsoft.com"),
        ("BINGO_LOGIN_URL", "login.microsoftonline.com/consumers"),
    ],
    ids=[
        "create-ws-scheme",
        "create-ftp-scheme",
        "create-no-scheme",
        "create-no-host",
        "chathub-https-scheme",
        "chathub-no-scheme",
        "chathub-no-host",
        "copilot-ws-scheme",
        "login-no-scheme",
    ],
)
def test_from_env_bad_url_raises_config_error_naming_variable(name, value):
    error = config_error({name: value})
    assert str(error).startswith(f"{name} ")


# -- timeouts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "field"), TIMEOUT_VARIABLES.items(), ids=list(TIMEOUT_VARIABLES)
)
@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2.5", 2.5), ("30", 30.0), (" 7 ", 7.0), ("", None)],
    ids=["fraction", "whole", "padded", "empty-means-default"],
)
def test_from_env_timeout_parsed_as_seconds(name, field, raw, expected):
    settings = Settings.from_env({name: raw})
    assert getattr(settings, field) == (
        getattr(Settings(), field) if expected is None else expected
    )


@pytest.mark.parametrize("name", TIMEOUT_VARIABLES, ids=list(TIMEOUT_VARIABLES))
@pytest.mark.parametrize(
    "raw",
    ["soon", "10s", "-1", "0", "inf", "-inf", "nan", "1e999"],
    ids=[
        "word",
        "unit-suffix",
        "negative",
        "zero",
        "inf",
        "minus-inf",
        "nan",
        "overflow",
    ],
)
def test_from_env_bad_timeout_raises_config_error_naming_variable(name, raw):
    error = config_error({name: raw})
    assert str(error).startswith(f"{name} ")
    assert repr(raw) in str(error)


# -- counts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "field"), COUNT_VARIABLES.items(), ids=list(COUNT_VARIABLES)
)
def test_from_env_count_parsed_as_whole_number(name, field):
    assert getattr(Settings.from_env({name: " 1000 "}), field) == 1000


@pytest.mark.parametrize("name", COUNT_VARIABLES, ids=list(COUNT_VARIABLES))
@pytest.mark.parametrize(
    "raw",
    ["0", "-5", "1.5", "1e3", "lots", "+5"],
    ids=["zero", "negative", "fraction", "exponent", "word", "plus-sign"],
)
def test_from_env_bad_count_raises_config_error_naming_variable(name, raw):
    error = config_error({name: raw})
    assert str(error).startswith(f"{name} ")


def test_from_env_superscript_digit_count_raises_config_error_naming_variable():
    error = config_error({"BINGO_HISTORY_CHARS": "²"})
    assert str(error).startswith("BINGO_HISTORY_CHARS ")


# -- locale, log level, CORS -------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("de-DE", "de-DE"), (" fr-FR ", "fr-FR"), ("zh-CN", "zh-CN")],
    ids=["de", "padded", "zh"],
)
def test_from_env_locale_parsed(raw, expected):
    assert Settings.from_env({"BINGO_LOCALE": raw}).locale == expected


@pytest.mark.parametrize(
    "raw",
    ["en", "english", "en_US", "en-USA", "en-U5", "-US"],
    ids=[
        "language-only",
        "word",
        "underscore",
        "three-letter-region",
        "digit-in-region",
        "no-language",
    ],
)
def test_from_env_bad_locale_raises_config_error_naming_variable(raw):
    assert str(config_error({"BINGO_LOCALE": raw})).startswith("BINGO_LOCALE ")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("debug", "DEBUG"), (" Warning ", "WARNING"), ("ERROR", "ERROR")],
    ids=["lower", "mixed-padded", "upper"],
)
def test_from_env_log_level_normalised(raw, expected):
    assert Settings.from_env({"BINGO_LOG_LEVEL": raw}).log_level == expected


def test_from_env_bad_log_level_raises_config_error_naming_variable():
    assert str(config_error({"BINGO_LOG_LEVEL": "verbose"})).startswith(
        "BINGO_LOG_LEVEL "
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("https://chat.example", "https://chat.example"), ("  ", "*")],
    ids=["origin", "blank-means-any"],
)
def test_from_env_cors_origin(raw, expected):
    assert Settings.from_env({"BINGO_CORS_ORIGIN": raw}).cors_origin == expected


# -- API keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("sk-one", {"sk-one"}),
        ("sk-one, sk-two ,,sk-three , ", {"sk-one", "sk-two", "sk-three"}),
        ("sk-one,sk-one", {"sk-one"}),
        ("", set()),
        (" , ,", set()),
    ],
    ids=["single", "list-with-blanks", "duplicates", "empty-means-open", "only-blanks"],
)
def test_from_env_api_keys_comma_list(raw, expected):
    assert Settings.from_env({"BINGO_API_KEYS": raw}).api_keys == frozenset(expected)


# -- proxy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {
                "HTTPS_PROXY": "http://upper:1",
                "https_proxy": "http://lower:2",
                "ALL_PROXY": "http://all:3",
            },
            "http://upper:1",
        ),
        (
            {"https_proxy": "http://lower:2", "ALL_PROXY": "http://all:3"},
            "http://lower:2",
        ),
        (
            {"ALL_PROXY": "http://all:3", "all_proxy": "http://all-lower:4"},
            "http://all:3",
        ),
        ({"all_proxy": "http://all-lower:4"}, "http://all-lower:4"),
        ({"HTTPS_PROXY": "  ", "ALL_PROXY": "http://all:3"}, "http://all:3"),
        ({}, ""),
    ],
    ids=[
        "HTTPS_PROXY-wins",
        "https_proxy-over-ALL_PROXY",
        "ALL_PROXY-over-all_proxy",
        "all_proxy-alone",
        "blank-HTTPS_PROXY-skipped",
        "none",
    ],
)
def test_from_env_proxy_precedence(env, expected):
    assert Settings.from_env(env).proxy == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("proxy.local:3128", "http://proxy.local:3128"),
        ("https://proxy.local:443", "https://proxy.local:443"),
        ("http://user:pa55@proxy.local:3128", "http://user:pa55@proxy.local:3128"),
    ],
    ids=["bare-host-port", "https", "with-credentials"],
)
def test_from_env_proxy_url_normalised(raw, expected):
    assert Settings.from_env({"HTTPS_PROXY": raw}).proxy == expected


@pytest.mark.parametrize("raw", ["socks5h://127.0.0.1:1080", "socks5://u:p@h:1", "socks4://h:1"])
def test_from_env_socks_proxy_is_refused_at_start(raw):
    """Neither HTTP library speaks SOCKS without extras: refuse now, not on every request."""
    error = config_error({"ALL_PROXY": raw})
    assert str(error) == "ALL_PROXY: SOCKS proxies are not supported; use an HTTP(S) proxy (http://host:port)"


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, "copilot"), ({"BINGO_UPSTREAM": "chathub"}, "chathub"), ({"BINGO_UPSTREAM": " Copilot "}, "copilot")],
)
def test_from_env_upstream(env, expected):
    assert Settings.from_env(env).upstream == expected


def test_from_env_bad_upstream_names_the_variable():
    assert str(config_error({"BINGO_UPSTREAM": "bing"})) == "BINGO_UPSTREAM must be one of copilot, chathub, not 'bing'"


def test_from_env_copilot_settings():
    settings = Settings.from_env({
        "COPILOT_USER_AGENT": "Mozilla/5.0 (X11) Firefox/147.0", "BINGO_COPILOT_MAX_CHARS": "4000",
        "BINGO_MAX_ANSWER_CHARS": "50", "BINGO_THREADS": "32",
    })
    assert (settings.copilot_user_agent, settings.copilot_max_chars) == ("Mozilla/5.0 (X11) Firefox/147.0", 4000)
    assert (settings.max_answer_chars, settings.threads) == (50, 32)
    assert settings.copilot_presentation == "app"
    assert Settings.from_env({"COPILOT_COOKIE": "a=b"}).copilot_presentation == "web"


@pytest.mark.parametrize("name", ["BINGO_COPILOT_MAX_CHARS", "BINGO_MAX_ANSWER_CHARS", "BINGO_THREADS"])
def test_from_env_counts_name_the_variable(name):
    assert str(config_error({name: "0"})).startswith(f"{name} must be a positive whole number")


def test_from_env_user_agent_must_be_one_line():
    assert str(config_error({"COPILOT_USER_AGENT": "a\r\nX-Evil: 1"})) == "COPILOT_USER_AGENT must be one line of text"


def test_from_env_account_settings(tmp_path):
    accounts = tmp_path / "accounts.jsonl"
    accounts.write_text('{"name": "a", "anonymous": true}\n', encoding="utf-8")
    settings = Settings.from_env({
        "COPILOT_REFRESH_TOKEN": " M.C5-refresh ", "COPILOT_ACCOUNTS_FILE": f" {accounts} ",
        "BINGO_LOGIN_URL": "http://127.0.0.1:9/consumers/",
    })
    assert (settings.copilot_refresh_token, settings.copilot_accounts_file) == ("M.C5-refresh", str(accounts))
    assert settings.login_url == "http://127.0.0.1:9/consumers"


def test_from_env_refresh_token_must_be_one_line():
    assert str(config_error({"COPILOT_REFRESH_TOKEN": "rt\nX: 1"})) == "COPILOT_REFRESH_TOKEN must be one line of text"


def test_from_env_accounts_file_must_exist(tmp_path):
    assert str(config_error({"COPILOT_ACCOUNTS_FILE": str(tmp_path)})) == (
        f"COPILOT_ACCOUNTS_FILE must name a readable file, not {str(tmp_path)!r}"
    )


def test_from_env_ca_bundle_must_exist(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert Settings.from_env({"SSL_CERT_FILE": str(bundle)}).ca_bundle == str(bundle)
    assert Settings.from_env({"REQUESTS_CA_BUNDLE": str(bundle), "SSL_CERT_FILE": "/nope"}).ca_bundle == str(bundle)
    assert str(config_error({"REQUESTS_CA_BUNDLE": "/nope/ca.pem"})) == (
        "REQUESTS_CA_BUNDLE must name a readable CA bundle file, not '/nope/ca.pem'"
    )


@pytest.mark.parametrize(
    "name",
    ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"],
    ids=["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"],
)
def test_from_env_bad_proxy_raises_config_error_naming_variable(name):
    error = config_error({name: "ftp://proxy.local:21"})
    assert str(error).startswith(f"{name} ")


def test_from_env_bad_proxy_error_hides_credentials():
    error = config_error({"HTTPS_PROXY": "ftp://alice:s3cr3t-pw@proxy.local:21"})
    assert "s3cr3t-pw" not in str(error)
    assert "alice" not in str(error)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"NO_PROXY": "localhost,127.0.0.1"}, "localhost,127.0.0.1"),
        ({"no_proxy": ".internal"}, ".internal"),
        ({"NO_PROXY": "upper", "no_proxy": "lower"}, "upper"),
        ({}, ""),
    ],
    ids=["upper", "lower", "upper-wins", "unset"],
)
def test_from_env_no_proxy(env, expected):
    assert Settings.from_env(env).no_proxy == expected


# -- secrets never in repr ---------------------------------------------------------

SECRET_ENV = {
    "BING_COOKIE": "_U=bing-cookie-secret; KievRPSSecAuth=kiev-secret",
    "COPILOT_COOKIE": "copilot-cookie-secret",
    "COPILOT_ACCESS_TOKEN": "copilot-token-secret",
    "COPILOT_REFRESH_TOKEN": "copilot-refresh-secret",
    "BINGO_API_KEYS": "sk-key-one-secret,sk-key-two-secret",
    "HTTPS_PROXY": "http://proxy-user:proxy-pass-secret@proxy.local:3128",
    "REDIS_URL": "rediss://redis-user:redis-pass-secret@cache.local:6380/0",
}


@pytest.mark.parametrize(
    "secret",
    [
        "bing-cookie-secret",
        "kiev-secret",
        "copilot-cookie-secret",
        "copilot-token-secret",
        "copilot-refresh-secret",
        "sk-key-one-secret",
        "sk-key-two-secret",
        "proxy-user",
        "proxy-pass-secret",
        "redis-user",
        "redis-pass-secret",
    ],
    ids=[
        "bing-cookie",
        "bing-cookie-second-pair",
        "copilot-cookie",
        "copilot-token",
        "copilot-refresh-token",
        "api-key-1",
        "api-key-2",
        "proxy-user",
        "proxy-password",
        "redis-user",
        "redis-password",
    ],
)
def test_settings_repr_hides_secret(secret):
    settings = Settings.from_env(SECRET_ENV)
    assert repr(settings).startswith("Settings(")
    assert secret not in repr(settings)
    assert secret not in str(settings)


def test_settings_repr_still_shows_non_secret_fields():
    settings = Settings.from_env({**SECRET_ENV, "BINGO_LOCALE": "de-DE"})
    assert "locale='de-DE'" in repr(settings)


def test_repr_hides_credentials_carried_in_endpoint_urls():
    settings = Settings.from_env({
        "BINGO_CREATE_URL": "https://mirror-user:mirror-pass@mirror.example:8443/turing/conversation/create?key=query-secret",
        "BINGO_CHATHUB_URL": "wss://hub.example/sydney/ChatHub?token=hub-secret#frag",
    })
    text = repr(settings)
    for secret in ("mirror-user", "mirror-pass", "query-secret", "hub-secret", "frag"):
        assert secret not in text
    assert "create_url='https://mirror.example:8443/turing/conversation/create'" in text
    assert "chathub_url='wss://hub.example/sydney/ChatHub'" in text
    assert settings.create_url.endswith("?key=query-secret"), "only the repr is redacted"


@pytest.mark.parametrize(("raw", "expected"), [("", True), ("0", False), ("off", False), ("1", True), ("TRUE", True)])
def test_from_env_chunk_message(raw, expected):
    assert Settings.from_env({"BINGO_CHUNK_MESSAGE": raw}).chunk_message is expected


def test_from_env_bad_chunk_message_names_the_variable():
    assert str(config_error({"BINGO_CHUNK_MESSAGE": "maybe"})) == "BINGO_CHUNK_MESSAGE must be 1 or 0, not 'maybe'"
