"""Exercise 2: predict what a bounded pool of sync workers can do, before you measure it.

Replace each `None` with an expression. Little's law links the three numbers of any queue:
requests in service = throughput x time each request spends in service.
"""


def max_in_service(workers):
    """How many page views can sync_server.py --workers N serve at once?"""
    return None


def max_throughput(workers, delay_ms):
    """The most page views per second it can finish if each one waits `delay_ms` upstream
    (--io-delay-ms) and everything else is free."""
    return None


def connections_before_timeouts(workers, delay_ms, timeout_s):
    """With wrk keeping `c` connections busy, each request waits its turn behind the others:
    about c / max_throughput seconds. The most connections for which that wait is at most
    wrk's --timeout of `timeout_s` seconds? (Connections are whole: round down.)"""
    return None
