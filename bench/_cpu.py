"""CPU time of the benchmark's own helper processes (load generators), once they have ended."""

import resource


def children_cpu_seconds() -> float:
    """CPU time (user + system) of this process's children that have ended and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
