"""``python -m udplab``: the same command line as ``udplab`` (see :mod:`udplab.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m udplab"))
