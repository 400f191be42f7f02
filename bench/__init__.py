"""Benchmarks: what the gateway costs on top of its upstream, side by side.

`python -m bench` starts the local upstream (`bingo.sandbox`) and the Procfile's
gunicorn command against it, then measures the gateway against a direct baseline,
bingo's own ChatHub client reading the same upstream with no HTTP in between.
Nothing here is imported by `bingo/`; only loopback is used.
"""
