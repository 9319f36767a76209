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
import socket
import sys
import threading

from phantom.errors import ClusterError

CONNECT_S = 5.0  # how long the cluster's head may take to answer before the driver says so

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
                 stream=None, lock=None) -> None:
        self.address = address
        self.lock = lock  # the folder's SweepLock: told the cluster and job this driver runs as
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
            env = _storage_env()
            if env:  # a URI's credentials, for the workers (never in the folder: phantom.cloud)
                kwargs["runtime_env"] = {"env_vars": env}
            if address:
                probe_cluster(address)
                ray.init(address=address, **kwargs)
            else:
                ray.init(address="local", include_dashboard=False, **kwargs)
            self.connected = True
            self.started = _started_here()
            self._tell_lock(address)
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


    def _tell_lock(self, address: str | None) -> None:
        """Record in the lock (and, for the hints, in the folder) which cluster and job this
        driver runs as, when it attached to a cluster rather than starting Ray here."""
        if self.lock is None:
            return
        from phantom.orchestrator.hints import record_cluster

        gcs = None
        if not self.started:
            import ray

            ctx = ray.get_runtime_context()
            # the address as the user gave it (what they can reach), else the one Ray resolved
            given = address or ""
            gcs = given if ":" in given and "://" not in given else ctx.gcs_address
            cluster_id = getattr(_node(), "cluster_id", None)
            self.lock.attach_ray(gcs, ctx.get_job_id(), cluster_id.hex() if hasattr(cluster_id, "hex") else None,
                                 address)
        try:
            record_cluster(self.lock.store, gcs)
        except Exception:  # noqa: BLE001 - only the hints need it
            pass


def _storage_env() -> dict[str, str]:
    from phantom.cloud import secret_env

    return secret_env()


def probe_cluster(address: str) -> None:
    """Before ``ray.init`` attaches (which waits a minute for a head that does not answer and
    prints a page of errors when the cluster wants a token): the head answers within
    :data:`CONNECT_S` and accepts this driver, or one line says what to set."""
    if address.startswith("ray://"):
        return  # Ray Client: its own server, its own errors
    target = address
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address_or_die

            target = canonicalize_bootstrap_address_or_die("auto")
        except Exception:  # noqa: BLE001 - ConnectionError: no cluster started on this node
            raise ClusterError("no Ray cluster runs on this node (--address auto): start one with `ray start "
                               "--head`, or name its head with --address HOST:PORT (or RAY_ADDRESS)") from None
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host or target, int(port or 6379)), timeout=CONNECT_S):
            pass
    except (OSError, ValueError):
        raise ClusterError(f"cannot reach the Ray cluster at {target}: nothing answers there within "
                           f"{CONNECT_S:g} s (check --address / RAY_ADDRESS, and that its head runs: "
                           f"`ray status --address {target}`)") from None
    error, nodes = _ask_gcs(target)
    if error is None and nodes and not (set(nodes) & _local_addresses(host)):
        raise ClusterError(f"this machine is not a node of the Ray cluster at {target} (its nodes: "
                           f"{', '.join(sorted(set(nodes))[:4])}): run the driver on one of them, join this machine "
                           f"first (`ray start --address {target}`), or submit the sweep as a Ray job")
    if error is not None and ("InvalidAuthToken" in error or "Authentication" in error or "UNAUTHENTICATED" in error):
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
            raise ClusterError(f"the Ray cluster at {target} requires token authentication: set RAY_AUTH_MODE=token, "
                               "with the cluster's token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token")
        raise ClusterError(f"the Ray cluster at {target} refused this driver's token: give it the cluster's token "
                           "(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)")


def _ask_gcs(target: str) -> tuple[str | None, list[str]]:
    """(the error of a small request to the cluster's GCS or None, the addresses of its live
    nodes), with Ray's own C++ warning lines kept off the terminal."""
    out: list = []

    def ask() -> None:
        try:
            import ray._raylet

            client = ray._raylet.GcsClient(address=target)
            infos = client.get_all_node_info(timeout=CONNECT_S).values()
            out.append((None, [i.node_manager_address for i in infos if i.state == 0]))  # 0: ALIVE
        except Exception as exc:  # noqa: BLE001
            out.append((f"{type(exc).__name__}: {exc}", []))

    with _stderr_off():
        thread = threading.Thread(target=ask, daemon=True)
        thread.start()
        thread.join(CONNECT_S * 2)
    return out[0] if out else (f"no answer within {CONNECT_S * 2:g} s", [])


def _local_addresses(head: str) -> set[str]:
    """This machine's addresses: the one it reaches the head from (a UDP socket's routing,
    nothing sent), its hostname's, and loopback."""
    found = {"127.0.0.1", "localhost"}
    try:
        import psutil  # Ray's own dependency: every address of every interface

        found |= {a.address for addrs in psutil.net_if_addrs().values() for a in addrs
                  if a.family in (socket.AF_INET, socket.AF_INET6)}
    except Exception:  # noqa: BLE001
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((head, 1))
            found.add(s.getsockname()[0])
    except OSError:
        pass
    try:
        found |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        pass
    return found


@contextlib.contextmanager
def _stderr_off():
    """File descriptor 2 to /dev/null (Ray's C++ client logs there directly)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


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
