"""Gunicorn settings, read automatically from the working directory.

The threaded worker is required, not a tuning choice: the sync worker is killed by
its own --timeout in the middle of a long answer, and serves one stream per process.
bingo's own (bingo/worker.py) is gthread with request reading bounded in time.
gunicorn binds 0.0.0.0:$PORT by itself when PORT is set (Heroku and friends), and
127.0.0.1:8000 otherwise; WEB_CONCURRENCY sets the number of processes.
"""
import os
import signal

from bingo import shutdown
from bingo.config import ConfigError, Settings

# gthread, except that each request is read whole, without blocking, by the worker's
# event loop before a thread serves it (BINGO_REQUEST_READ_TIMEOUT): slow or stalled
# clients cannot hold the threads. See bingo/worker.py.
worker_class = "bingo.worker.BoundedThreadWorker"
# Connections one process holds open, reading or kept alive (gunicorn's default is
# 1,000): past it gunicorn stops accepting, so stalled clients must not reach it
# before honest ones do. The worker raises its descriptor limit to match.
worker_connections = 4096
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


def post_worker_init(worker):
    """On SIGTERM, refuse new connections at once and tell the relay the deadline.

    gunicorn's gthread worker stops polling its listeners on SIGTERM but keeps them
    open until the grace period ends, so new connections would sit unanswered in the
    backlog; closing this process's copies makes the kernel refuse them once every
    process has closed its own (the master closes its copies before it signals).
    """
    chained = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        shutdown.begin(worker.cfg.graceful_timeout)
        worker.log.info("SIGTERM: refusing new connections; unfinished requests end within %gs", worker.cfg.graceful_timeout)
        if callable(chained):
            chained(signum, frame)
        # On the worker's main loop, not in the handler: the poller may hold the listeners.
        worker.method_queue.defer(_stop_listening, worker)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.siginterrupt(signal.SIGTERM, False)


def _stop_listening(worker):
    worker.set_accept_enabled(False)
    for listener in worker.sockets:
        listener.close()
