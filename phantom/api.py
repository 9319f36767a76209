"""The Python API: results as DuckDB relations and matplotlib figures, sweeps run from Python.

A notebook calls the same code as the command line, through the same faces of the layers:
:func:`open` reads results through the read-only connection of ``phantom query``
(:mod:`phantom.analysis`), its view methods come from the view registry, its figures and figure
methods from the report's registry; :func:`run` and :func:`resume` call what ``phantom sweep
run`` and ``phantom sweep resume`` call (:mod:`phantom.orchestrator`). This module is the face:
reading lives in phantom.reading, running in phantom.running.
Errors are the CLI's: a :class:`~phantom.errors.PhantomError` leaf with a one-line message.

Example:
    ```python
    import phantom

    done = phantom.run("lr50", storage="runs", training__steps=20)
    with phantom.open(done.uri) as res:
        res.fits().df()
        res.sql("SELECT character, count(*) AS n FROM trial_summary GROUP BY 1").pl()
        res.phase_diagram()
    ```

Importing this module is light (no DuckDB, matplotlib, Ray or torch until a function needs them),
so ``import phantom`` stays fast.
"""

from __future__ import annotations

from phantom.reading import Results, UnknownViewError, open
from phantom.running import RunResult, resume, run

__all__ = ["Results", "RunResult", "UnknownViewError", "open", "resume", "run"]
