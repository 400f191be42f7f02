# Sourced by demo.sh and test.sh: make .venv (once) and install bingo with EXTRAS.
# Usage: EXTRAS=test source scripts/venv.sh   (run from the repository root)
venv=${BINGO_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt -e ".[${EXTRAS}]"
