"""The commands Phantom's messages suggest, whole: the folder quoted for a shell (a URI's
options hold ``&``), and ``--address`` when the sweep ran on a Ray cluster (recorded in the
folder: ``ray/cluster.json``, :func:`record_cluster`), so a hint can be pasted as it is."""

from __future__ import annotations

import json
import shlex

from phantom import layout


def folder_uri(root: str, name: str) -> str:
    """STORAGE/NAME as shown to the user: joined as a path, never into a URI's query string,
    and without the URI's credentials."""
    if "://" not in root:
        return f"{root.rstrip('/')}/{name}"
    from phantom.cloud import parse

    return parse(root).child(name).uri


def command(action: str, uri: str, address: str | None = None, *extra: str) -> str:
    """``phantom sweep ACTION 'URI' [--address A] EXTRA...``."""
    parts = ["phantom sweep", action, shlex.quote(uri)]
    if address:
        parts.append(f"--address {shlex.quote(address)}")
    parts.extend(e for e in extra if e)
    return " ".join(parts)


def cluster_address(store) -> str | None:
    """The Ray cluster the folder's last driver attached to (None: it started Ray itself)."""
    try:
        if not store.exists(layout.RAY_DIR, layout.CLUSTER_FILE):
            return None
        return json.loads(store.read_text(layout.RAY_DIR, layout.CLUSTER_FILE)).get("address") or None
    except (OSError, ValueError):
        return None


def record_cluster(store, address: str | None) -> None:
    """Remember (or forget, with None) the cluster this folder's sweep runs on."""
    if address:
        store.write_text(json.dumps({"address": address}), layout.RAY_DIR, layout.CLUSTER_FILE)
    elif store.exists(layout.RAY_DIR, layout.CLUSTER_FILE):
        store.delete(layout.RAY_DIR, layout.CLUSTER_FILE)


def resume_hint(store, *extra: str, address: str | None = None) -> str:
    """The whole ``phantom sweep resume`` command for this folder."""
    return command("resume", store.uri, address or cluster_address(store), *extra)
