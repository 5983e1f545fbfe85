"""Process pools for the commands that work on many files: stopping them, and signals."""

from __future__ import annotations

import signal
from concurrent.futures import ProcessPoolExecutor


def stop_now(executor: ProcessPoolExecutor) -> None:
    """Stop the workers without waiting for the chunks already handed to them.

    On Ctrl-C or a closed pipe nobody wants those results, and `shutdown` can only cancel
    work not yet sent to a worker (Python 3.14 adds `terminate_workers` for this).
    """
    # A private attribute, read defensively: without it the workers finish their chunks.
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join()


def ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the parent alone handles it, and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
