"""Ensembling fold models and runs into a validated submission."""
