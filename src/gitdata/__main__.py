"""``python -m gitdata``: the same as ``git data``."""

from .cli import main

main()
