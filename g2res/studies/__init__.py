"""Controlled studies: several trainings of one recipe that differ in one switch."""

from g2res.studies.residual import residual_vs_plain

__all__ = ["residual_vs_plain"]
