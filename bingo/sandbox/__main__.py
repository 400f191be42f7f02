"""`python -m bingo.sandbox`: serve the sandbox on loopback until Ctrl-C.

Prints the environment lines that point the gateway at it; that banner is the
only print in the package.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from .server import Sandbox


def main(argv: list[str] | None = None) -> None:
    """Parse options, start the sandbox, print the env banner, wait for Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m bingo.sandbox", description=__doc__
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="loopback port (0: any free)"
    )
    parser.add_argument(
        "--ping-interval", type=float, default=10.0, help="seconds between pings"
    )
    parser.add_argument(
        "--max-turns", type=int, default=30, help="turns per conversation"
    )
    parser.add_argument(
        "--require-cookie", default=None, help="creates must send this cookie"
    )
    parser.add_argument(
        "--tls-cert", default=None, help="PEM certificate chain: serve https/wss"
    )
    parser.add_argument(
        "--tls-key", default=None, help="PEM private key, if not in --tls-cert"
    )
    args = parser.parse_args(argv)
    if args.tls_key and not args.tls_cert:
        parser.error("--tls-key needs --tls-cert")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    done = threading.Event()

    def finish(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, finish)
    with Sandbox(
        port=args.port,
        ping_interval=args.ping_interval,
        max_turns=args.max_turns,
        require_cookie=args.require_cookie,
        certfile=args.tls_cert,
        keyfile=args.tls_key,
    ) as sb:
        print(f"BINGO_CREATE_URL={sb.create_url}")
        print(f"BINGO_CHATHUB_URL={sb.chathub_url}")
        print(f"BINGO_COPILOT_URL={sb.copilot_url}", flush=True)
        try:
            done.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
