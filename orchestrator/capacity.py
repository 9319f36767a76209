"""Can the cluster ever run one Tune trial (one pack)? Asked before anything is dispatched.

Ray queues a request that no node can fulfil and waits forever (its autoscaler repeats "No
available node types can fulfill resource request"). So the driver compares the request
with the alive nodes (``ray.nodes()``): one that has at least the requested CPUs and GPUs is
enough. When none has, the request can still be met by a cluster whose autoscaler adds nodes
(cluster launcher or KubeRay): its node types are not visible from the driver, so the driver
announces that it waits for one. Without an autoscaler (a local Ray, a fixed cluster; Ray's
read-only "autoscaler" of such clusters adds nothing) the request is refused in one line.
"""

from __future__ import annotations

import json

from phantom.errors import PhantomError

READONLY_NODE_TYPE = "node_"  # Ray's read-only provider names each node's type after the node


class ResourceError(PhantomError):
    """A trial asks for resources that this cluster can never provide."""


def _fits(resources: dict[str, float], request: dict[str, float]) -> bool:
    return all(resources.get(k, 0.0) + 1e-9 >= v for k, v in request.items() if v > 0)


def _shape(resources: dict[str, float]) -> str:
    cpu = resources.get("CPU", 0.0)
    gpu = resources.get("GPU", 0.0)
    return f"{cpu:g} CPU, {gpu:g} GPU"


def autoscaler_can_add_nodes() -> bool:
    """Whether an autoscaler that launches nodes runs for this cluster (v2: it reports its
    state to the GCS; v1: its status names node types that are not just the existing nodes)."""
    import ray

    try:
        from ray._raylet import GcsClient
        from ray.core.generated.autoscaler_pb2 import GetClusterStatusReply

        reply = GetClusterStatusReply()
        reply.ParseFromString(GcsClient(address=ray.get_runtime_context().gcs_address).get_cluster_status(timeout_s=5))
        if reply.autoscaling_state.autoscaler_state_version > 0:
            return True
    except Exception:  # noqa: BLE001 - an older or newer Ray: fall through to v1
        pass
    try:
        from ray.experimental.internal_kv import _internal_kv_get

        raw = _internal_kv_get("__autoscaling_status")
        if not raw:
            return False
        report = json.loads(raw).get("autoscaler_report") or {}
        types = set((report.get("node_type_mapping") or {}).values()) | set(report.get("pending_launches") or {})
        return any(not str(t).startswith(READONLY_NODE_TYPE) for t in types)
    except Exception:  # noqa: BLE001
        return False


def check_capacity(request: dict[str, float], *, can_autoscale=None) -> str | None:
    """None when an alive node can run ``request``; a line to announce when only an autoscaler
    can (it will be waited for); :class:`ResourceError` when nothing ever can."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if any(_fits(r, request) for r in nodes):
        return None
    wanted = _shape(request)
    if (can_autoscale or autoscaler_can_add_nodes)():
        return f"no node has {wanted} for a trial yet: waiting for the autoscaler to add one"
    have = "; ".join(sorted({_shape(r) for r in nodes})) or "no nodes"
    most = max((r.get("GPU", 0.0) for r in nodes), default=0.0)
    hint = ""
    if request.get("GPU", 0.0) > most:
        hint = (" (no GPU here? run on CPUs with --set resources.gpus_per_trial=0)" if not most else
                f" (a trial runs on one node: ask for at most {most:g} GPU)")
    raise ResourceError(
        f"a trial asks for {wanted} (`resources`), but no node of this Ray cluster has that "
        f"(nodes: {have}) and no autoscaler can add one{hint}"
    )


def slots(nodes: list[dict[str, float]], request: dict[str, float], max_concurrent: int | None = None) -> int:
    """How many Tune trials of ``request`` the nodes (their resources) run at once: on each
    node, as many as its CPUs and GPUs hold; capped by ``resources.max_concurrent``."""
    total = 0
    for resources in nodes:
        fits = [int((resources.get(k, 0.0) + 1e-9) // v) for k, v in request.items() if v > 0]
        total += min(fits) if fits else 0
    if max_concurrent is not None:
        total = min(total, max_concurrent)
    return total


def worker_slots(request: dict[str, float], max_concurrent: int | None = None) -> int:
    """:func:`slots` of the alive nodes of the connected Ray cluster; at least 1 (a cluster
    still waiting for its autoscaler runs one pack at a time as far as planning knows)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return max(1, slots(nodes, request, max_concurrent))
