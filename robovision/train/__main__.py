"""``python -m robovision.train --config ... --out ...``: the same as ``robovision train``."""

from __future__ import annotations

import sys

from robovision.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
