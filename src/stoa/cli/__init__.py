"""The ``stoa`` command line: one Typer sub-app per noun, all thin over ``stoa.Client``."""
