"""recal's command line: LightningCLI with fit / validate / test / predict.

    python cli.py fit --config srm_r50.yaml
    python cli.py fit --config quickstart.yaml --model.backbone.pooling '[avg, max]'

A ``--config NAME`` that is not a path from the current folder resolves to
``configs/NAME``, else to the unique file of that name under ``configs/``.
User errors (bad paths, names, options) end with one short message and exit
status 2, never a traceback.
"""

from __future__ import annotations

import sys

from recal.cli import main

if __name__ == "__main__":
    sys.exit(main())
