"""Moved to :mod:`g2res.ensemble.plots` (below both train and ensemble); this name is an
alias of that module, kept so that old imports keep working."""

import sys

from g2res.ensemble import plots as _moved

sys.modules[__name__] = _moved
