"""``python -m g2res`` (also what ``torchrun -m g2res`` runs)."""

import sys

from g2res.cli import main

sys.exit(main())
