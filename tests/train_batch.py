"""Run several ``python train.py ARGS`` command lines in one interpreter, so their imports are paid once.

``python tests/train_batch.py CASES.json RESULTS.json``: CASES maps a name to ``{"argv": [...], "env":
{...}}``; RESULTS gets, per name, the exit status, stdout and stderr a user would have seen. Each case
executes train.py as ``__main__`` (its Hydra entry point, argv rewriting and error reporting included);
an exception escaping it is printed as Python would print it, with exit status 1.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import runpy
import sys
import time
import traceback
from pathlib import Path

TRAIN_PY = Path(__file__).resolve().parents[1] / "train.py"


def exit_status(exc: SystemExit, stderr: io.StringIO) -> int:
    """What the interpreter would exit with for ``exc`` (a message is printed to stderr, status 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=stderr)
    return 1


def run_case(argv: list[str], env: dict[str, str]) -> dict:
    """Run ``train.py *argv`` with ``env`` added to the environment; return status, output and seconds."""
    from hydra.core.global_hydra import GlobalHydra

    saved_env, saved_argv = dict(os.environ), list(sys.argv)
    os.environ.update(env)
    sys.argv = [str(TRAIN_PY), *argv]
    stdout, stderr = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            runpy.run_path(str(TRAIN_PY), run_name="__main__")
            status = 0
        except SystemExit as exc:
            status = exit_status(exc, stderr)
        except BaseException:  # what the interpreter prints for an uncaught exception
            traceback.print_exc(file=stderr)
            status = 1
        finally:
            GlobalHydra.instance().clear()
            for handler in logging.getLogger().handlers:  # Hydra configures logging again per run
                handler.flush()
    os.environ.clear()
    os.environ.update(saved_env)
    sys.argv = saved_argv
    return {
        "returncode": status,
        "stdout": stdout.getvalue(),
        "stderr": stderr.getvalue(),
        "seconds": round(time.perf_counter() - start, 2),
    }


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    results = {name: run_case(case["argv"], case.get("env", {})) for name, case in cases.items()}
    Path(sys.argv[2]).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
