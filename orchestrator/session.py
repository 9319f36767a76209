"""The Ray session a sweep runs in: Ray attached or started here, quietly unless asked.

:class:`RaySession` connects to (or starts) Ray, quietly unless asked (``--verbose``): Ray's
own log lines, its workers' output and the error messages its raylets push to the driver
(tracebacks of workers that died, with raw colour codes) stay off the terminal — what they mean
for the sweep is said in one line by the engine and the watch (:mod:`phantom.orchestrator.watch`);
and it refuses a resource request no node can ever meet (:mod:`phantom.orchestrator.capacity`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys

QUIET_ENV = {  # set before Ray is imported: its constants read them at import
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",  # our own progress view, not Tune's tables
    "RAY_SCHEDULER_EVENTS": "0",  # autoscaler events and tips
    "RAY_DEDUP_LOGS": "0",
}


class RaySession:
    """Context manager: Ray attached (``address``, else where ``RAY_ADDRESS`` points) or started
    here, checked against ``request`` (one Tune trial's resources). On exit this session
    disconnects if it connected, and shuts down the Ray it started.

    Without an address Ray is started here even when a ``ray start`` cluster runs on this
    machine: ``ray.init()`` with no address would attach to the latest such cluster (Ray's
    default), which the CLI's "default: start Ray here" does not mean. Only the session folder
    of a Ray started here is removed after a clean run; an attached cluster's is never touched.
    """

    def __init__(self, address: str | None, request: dict[str, float], *, verbose: bool = False,
                 stream=None) -> None:
        self.address = address
        self.request = request
        self.verbose = verbose
        self.stream = stream or sys.stderr
        self.connected = False  # ray.init was called here: ray.shutdown on exit
        self.started = False  # ... and it started the local Ray (its session folder is ours)
        self._quiet = contextlib.ExitStack()

    def __enter__(self) -> RaySession:
        if not self.verbose:
            for key, value in QUIET_ENV.items():
                os.environ.setdefault(key, value)
        import ray

        from phantom.orchestrator.capacity import check_capacity

        if not ray.is_initialized():
            level = "WARNING" if self.verbose else "ERROR"
            kwargs = dict(logging_level=level, log_to_driver=self.verbose)
            address = self.address or os.environ.get("RAY_ADDRESS")  # `ray job submit` sets it
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(address="local", include_dashboard=False, **kwargs)
            self.connected = True
            self.started = _started_here()
        if not self.verbose:
            self._quiet.enter_context(raylet_messages_off())
        try:
            note = check_capacity(self.request)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        if note:
            print(note, file=self.stream, flush=True)
        return self

    def __exit__(self, exc_type=None, *exc) -> None:
        self._quiet.close()
        if self.connected:
            import ray

            session_dir = _session_dir() if self.started else None
            ray.shutdown()
            self.connected = self.started = False
            # a Ray started here leaves its session folder (logs, sockets: a few MB a run) in
            # /tmp/ray for good; Phantom records every trial's outcome and error itself, so the
            # folder goes after a clean run and stays (for Ray's own logs) after a failed one
            if session_dir and exc_type is None and not self.verbose:
                shutil.rmtree(session_dir, ignore_errors=True)


def _node():
    """This process's Ray node (Ray has no public accessor), or None."""
    try:
        from ray._private import worker

        return worker._global_node
    except Exception:  # noqa: BLE001 - a Ray without this internal
        return None


def _started_here() -> bool:
    """Whether this process's ``ray.init`` started the Ray it is connected to (the head node of
    a new local instance) rather than attaching to a running one."""
    node = _node()
    return bool(node is not None and getattr(node, "head", False))


def _session_dir() -> str | None:
    """The session folder of this process's Ray node."""
    node = _node()
    return node.get_session_dir_path() if node is not None else None


@contextlib.contextmanager
def raylet_messages_off():
    """Keep the error messages Ray's raylets push to the driver off the terminal: Ray prints
    each (a worker's traceback, "node marked dead", with colour codes) from a thread of its own
    through ``ray._private.worker.print_to_stdstream``, whatever ``log_to_driver`` says. Only
    those (``pid == "raylet"``) are held back; on a Ray without that function nothing changes."""
    try:
        from ray._private import worker
    except ImportError:  # pragma: no cover - a Ray that moved it
        yield
        return
    original = getattr(worker, "print_to_stdstream", None)
    if original is None:
        yield
        return

    def printed(data, *args, **kwargs):
        if data.get("pid") != "raylet":
            return original(data, *args, **kwargs)
        return None

    worker.print_to_stdstream = printed
    try:
        yield
    finally:
        worker.print_to_stdstream = original
