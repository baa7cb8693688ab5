"""Ending a finished command without the interpreter's slow teardown.

When a run is over, Python would still tear down every module and free every object one by one: with
torch, Lightning and their dependencies loaded that is about 1.5 CPU seconds (measured on the bare
``import lightning, torchvision``, AMD EPYC), paid after the last line of output. :func:`exit_now` does
what the teardown must do for the files to be complete, then ends the process at once.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading


def exit_now(code: int = 0) -> None:
    """End the process with ``code`` after what a normal exit does that matters: waiting for the threads
    that are not daemons, the ``atexit`` handlers (loggers and trackers finish there), flushing the logging
    handlers and the standard streams. Module teardown and garbage collection are skipped."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon and thread.is_alive():
            thread.join()
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # closed or broken pipe: nothing more can be written anyway
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
