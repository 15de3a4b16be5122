#!/usr/bin/env python3
"""Build the pair_style mtp LAMMPS plugin for this environment (cached; a no-op when current) and print the
path of the `.so` (for `plugin load PATH`). Run by tools/setup.sh after pbahpc is installed.

    .venv/bin/python tools/build_mtp_plugin.py [DEST_DIR]
"""
from __future__ import annotations

import sys

from pbahpc.mlip.plugin import build_plugin

if __name__ == "__main__":
    print(build_plugin(sys.argv[1] if len(sys.argv) > 1 else None))
