"""``python -m g2res`` (also what ``torchrun -m g2res`` runs)."""

import os
import sys

from g2res.cli import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # A torchrun worker: its gloo threads can abort the interpreter's finalisation after a
    # good run ("terminate called without an active exception", exit -6, and torchrun then
    # fails the job). Every output is written, renamed and closed by now, so flush the
    # streams and leave without the finalisers.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))
sys.exit(code)
