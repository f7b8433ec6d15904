"""`python -m rag ...`: the same commands as the `newsrag` console script (rag/interfaces/cli.py)."""
import sys

from rag.interfaces.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m rag"))
