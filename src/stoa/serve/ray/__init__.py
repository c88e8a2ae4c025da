"""Stoa on Ray: endpoints on Ray Serve, batch scoring, ingest and evaluation on Ray Data.

Nothing here is a second implementation: a replica builds the same app ``stoa server``
runs, and a Ray Data task calls the same per-partition functions as the local path.
Ray is imported only when a ``--ray`` path runs (``pip install 'stoa[ray]'``).
"""
