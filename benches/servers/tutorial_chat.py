"""The tutorial's pure-Python chat server (tests/tutorial_chat.py) as a contender of benches/run.py.

    python benches/servers/tutorial_chat.py [--inval S]

Prints ``PORT <n>`` first and serves on 127.0.0.1 until stdin closes or SIGTERM.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))

import tutorial_chat  # noqa: E402

if __name__ == "__main__":
    tutorial_chat.main()
