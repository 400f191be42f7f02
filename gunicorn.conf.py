"""Gunicorn settings, read automatically from the working directory.

The threaded worker is required, not a tuning choice: the sync worker is killed by
its own --timeout in the middle of a long answer, and serves one stream per process.
gunicorn binds 0.0.0.0:$PORT by itself when PORT is set (Heroku and friends), and
127.0.0.1:8000 otherwise; WEB_CONCURRENCY sets the number of processes.
"""
import os

from bingo.config import ConfigError, Settings

worker_class = "gthread"
# One thread holds one open answer. Bing answers can stream for minutes, so a
# process needs a thread per concurrent client (BINGO_THREADS, default 256).
# Parsed by bingo's own settings, so a bad value stops start-up naming the variable.
try:
    threads = Settings.from_env(os.environ).threads
except ConfigError as exc:
    raise SystemExit(f"bingo: {exc}") from None
# gthread heartbeats about once a second while threads stream, so this bounds a
# stuck process, not a request: answers longer than this are not cut.
timeout = 60
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# Method, path (without the query: clients put keys there) and status: never
# headers, which carry API keys. Every other line gunicorn writes is redacted too.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
logger_class = "bingo.gunicorn_logging.RedactingLogger"
# gunicorn 24+ opens an admin socket in ~/.gunicorn; a PaaS dyno has no use for it,
# and two gateways on one machine (tests, benchmarks) would fight over its path.
control_socket_disable = True
