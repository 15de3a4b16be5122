#!/usr/bin/env python3
"""Build the pair_style mtp LAMMPS plugin and the trainer's evaluator for this environment (cached; a no-op
when current) and print the path of each `.so` (the plugin's for `plugin load PATH`). Run by tools/setup.sh
after pbahpc is installed.

    .venv/bin/python tools/build_mtp_plugin.py [DEST_DIR]
"""
from __future__ import annotations

import sys

from pbahpc.mlip.plugin import build_evaluator, build_plugin

if __name__ == "__main__":
    dest = sys.argv[1] if len(sys.argv) > 1 else None
    print(build_plugin(dest))
    print(build_evaluator(dest))
