"""`python -m bench [--quick] [--json PATH]`: run, print the table, write the JSON."""

from __future__ import annotations

import sys

from .options import parse_options
from .report import render, write_json
from .run import run


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    result = run(options)
    write_json(result, options.json_path)
    sys.stdout.write(render(result) + f"\nJSON: {options.json_path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
