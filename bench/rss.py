"""Peak memory of a benchmark process: a NAS shares 4-8 GB with everything else."""

from __future__ import annotations

import resource


def report(what: str = "this benchmark process") -> None:
    """Print the peak resident set size (the models and buffers vaultd would hold)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of {what}: {peak:.0f} MiB (largest child process: {children:.0f} MiB)")
