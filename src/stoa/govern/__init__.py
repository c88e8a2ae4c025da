"""Govern: the registry, its gate, scanning and licences."""
