"""``python -m g2res.cli`` (the same as ``python -m g2res``)."""

import sys

from g2res.cli import main

sys.exit(main())
