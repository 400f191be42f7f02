"""`python -m bench [--quick] [--peers | --pool] [--json PATH]`: run, print the table, write the JSON."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from .options import parse_options
from .report import render, write_json
from .run import run


def _exit_on_term(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through the `finally` that stops every child process.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_term)
    options = parse_options(argv)
    if options.peers:
        from . import peers  # only when asked: it installs and runs gpt4free

        result = peers.run(options)
        peers.write_json(result, options.json_path)
        sys.stdout.write(peers.render(result) + f"\nJSON: {options.json_path}\n")
        return 0
    if options.pool:
        from . import pool  # only when asked: it starts redis-server

        figures = pool.run(options)
        pool.write_json(figures, options.json_path)
        sys.stdout.write(pool.render(figures) + f"\nJSON: {options.json_path}\n")
        return 0
    result = run(options)
    write_json(result, options.json_path)
    sys.stdout.write(render(result) + f"\nJSON: {options.json_path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
