"""Moved to :mod:`g2res.ensemble.metrics` (below both train and ensemble); this name is an
alias of that module, kept so that old imports keep working."""

import sys

from g2res.ensemble import metrics as _moved

sys.modules[__name__] = _moved
