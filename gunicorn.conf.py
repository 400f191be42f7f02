"""Gunicorn settings, read automatically from the working directory.

The threaded worker is required, not a tuning choice: the sync worker is killed by
its own --timeout in the middle of a long answer, and serves one stream per process.
gunicorn binds 0.0.0.0:$PORT by itself when PORT is set (Heroku and friends), and
127.0.0.1:8000 otherwise; WEB_CONCURRENCY sets the number of processes.
"""
import os
import signal

from bingo import shutdown
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
