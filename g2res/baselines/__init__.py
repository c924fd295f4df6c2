"""Classical baselines: the matched filter (template bank and oracle)."""
