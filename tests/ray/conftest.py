"""One local Ray cluster (2 CPUs, loopback) for every test in this folder.

The tests share an xdist group, so one worker runs them all against this cluster;
each test passes its own stores to Ray with its work (never through the job's
environment), as the ``--ray`` commands do.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """The cluster's GCS address (what ``--address`` takes)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()  # Serve's controller and proxy end with the cluster
