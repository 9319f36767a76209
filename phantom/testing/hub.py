"""A minimal Hugging Face hub on 127.0.0.1, for testing the real ``huggingface_hub`` client.

It serves model repositories from local folders with the endpoints the installed
``huggingface_hub`` / ``transformers.from_pretrained`` call (read from huggingface_hub 2.4's
``file_download.py``, ``hf_api.py`` and ``utils/_http.py``):

- ``HEAD|GET /{repo}/resolve/{revision}/{path}``: the file, with ``X-Repo-Commit``, ``ETag``
  (the file's SHA-256, as the hub gives LFS files) and ``Content-Length``; ``Range`` requests
  for resumed downloads. No ``X-Xet-*`` headers, so the client downloads over plain HTTP.
- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{revision}``: model info
  (``sha``, ``siblings``).
- ``GET /api/models/{repo}/tree/{revision}[/{path}]``: the file listing.

Errors carry the hub's ``X-Error-Code`` (``RepoNotFound`` as a 401, ``RevisionNotFound`` and
``EntryNotFound`` as 404s), which the client turns into its typed errors. Every request is
recorded in ``hub.requests`` as ``(method, path)``.

    with LocalHub({"phantom-test/tiny-llama": folder}) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp / "hf")}   # for the client process

From a shell (serves until interrupted; ``--tiny`` builds and serves a tiny test model)::

    python -m phantom.testing.hub --tiny tiny-llama --port 8555
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mimetypes
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_REVISION = "main"


class _Repo:
    def __init__(self, repo_id: str, folder: Path):
        self.id = repo_id
        self.folder = Path(folder)
        self.files = {
            p.relative_to(self.folder).as_posix(): p for p in sorted(self.folder.rglob("*")) if p.is_file()
        }
        self.sha256 = {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in self.files.items()}
        listing = "\n".join(f"{name} {digest}" for name, digest in sorted(self.sha256.items()))
        self.commit = hashlib.sha1(listing.encode()).hexdigest()  # 40 hex digits, like a git commit

    def knows(self, revision: str) -> bool:
        return revision in (DEFAULT_REVISION, self.commit)

    def info(self) -> dict:
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {
            "_id": self.commit[:24], "id": self.id, "modelId": self.id, "sha": self.commit,
            "private": False, "gated": False, "disabled": False, "downloads": 0, "likes": 0,
            "tags": ["transformers", "safetensors"], "library_name": "transformers",
            "createdAt": now, "lastModified": now,
            "siblings": [{"rfilename": name, "size": p.stat().st_size} for name, p in self.files.items()],
        }

    def tree(self, prefix: str) -> list[dict] | None:
        prefix = prefix.strip("/")
        entries = [
            {"type": "file", "oid": self.sha256[name], "size": p.stat().st_size, "path": name,
             "lfs": {"oid": self.sha256[name], "size": p.stat().st_size, "pointerSize": 134}}
            for name, p in self.files.items() if not prefix or name.startswith(prefix + "/")
        ]
        return entries if entries or not prefix else None


class LocalHub:
    """A hub serving ``{repo_id: folder}`` on 127.0.0.1 (``port=0``: a free port)."""

    def __init__(self, repos: dict[str, str | Path] | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str]] = []
        for repo_id, folder in (repos or {}).items():
            self.add(repo_id, folder)
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add(self, repo_id: str, folder: str | Path) -> None:
        self.repos[repo_id] = _Repo(repo_id, Path(folder))

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the hub is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(self._address, Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket: connections are refused from now on."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._address = self._server.server_address[:2]  # a restart reuses the port
            self._server = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _split(self, rest: str) -> tuple[_Repo | None, str, list[str]]:
        """'org/name/resolve/main/config.json' -> (repo, 'resolve', ['main', 'config.json'])."""
        parts = rest.strip("/").split("/")
        for n in (2, 1):  # 'org/name' ids first, then bare 'gpt2'-style ids
            if len(parts) > n and "/".join(parts[:n]) in self.repos:
                return self.repos["/".join(parts[:n])], parts[n], parts[n + 1:]
        return None, "", parts


class _Handler(BaseHTTPRequestHandler):
    hub: LocalHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet: the test reads hub.requests
        pass

    # -- responses

    def _send(self, code: int, body: bytes = b"", headers: dict | None = None, content_type: str = "application/json"):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data, headers: dict | None = None):
        self._send(200, json.dumps(data).encode(), headers)

    def _error(self, code: int, error_code: str, message: str, headers: dict | None = None):
        self._send(code, json.dumps({"error": message}).encode(), {"X-Error-Code": error_code, "X-Error-Message": message, **(headers or {})})

    # -- routes

    def do_HEAD(self):  # noqa: N802
        self._route()

    def do_GET(self):  # noqa: N802
        self._route()

    def _route(self):
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append((self.command, path))
        hub = self.hub
        if path == "/api/agent-harnesses":  # huggingface_hub's agent detection: an empty registry
            return self._json({"standardEnvVars": [], "harnesses": {}})
        if path.startswith("/api/models/"):
            repo, verb, rest = hub._split(path[len("/api/models/"):])
            if repo is None:
                # /api/models/{repo} with nothing after it
                repo = hub.repos.get("/".join(rest))
                if repo is None:
                    return self._error(401, "RepoNotFound", "Repository not found")
                return self._json(repo.info())
            if verb == "revision" and rest:
                if not repo.knows(rest[0]):
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {rest[0]}")
                return self._json(repo.info())
            if verb == "tree" and rest:
                if not repo.knows(rest[0]):
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {rest[0]}")
                entries = repo.tree("/".join(rest[1:]))
                if entries is None:
                    return self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": repo.commit})
                return self._json(entries)
            return self._error(404, "", "Not found")
        repo, verb, rest = hub._split(path)
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found")
        if verb != "resolve" or len(rest) < 2:
            return self._error(404, "", "Not found")
        revision, name = rest[0], "/".join(rest[1:])
        if not repo.knows(revision):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        commit = {"X-Repo-Commit": repo.commit}
        if name not in repo.files:
            return self._error(404, "EntryNotFound", f"{name} does not exist on \"{revision}\"", commit)
        data = repo.files[name].read_bytes()
        headers = {**commit, "ETag": f'"{repo.sha256[name]}"', "Accept-Ranges": "bytes"}
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        start = _range_start(self.headers.get("Range"))
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return self._send(206, data[start:], headers, ctype)
        self._send(200, data, headers, ctype)


def _range_start(header: str | None) -> int:
    """The first byte of ``Range: bytes=N-`` (the form resumed downloads send), else 0."""
    if not header or not header.startswith("bytes="):
        return 0
    first = header[len("bytes="):].split("-", 1)[0]
    return int(first) if first.isdigit() else 0


def save_tiny(name: str, folder: str | Path) -> Path:
    """Build a tiny test model (workers/tiny.py) and ``save_pretrained`` it with its tokenizer."""
    from phantom.workers.tiny import build_tiny

    folder = Path(folder)
    model, tokenizer = build_tiny(name)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - manual use
    import tempfile
    import time

    p = argparse.ArgumentParser(prog="python -m phantom.testing.hub", description=__doc__.split("\n\n")[0])
    p.add_argument("repos", nargs="*", metavar="REPO=FOLDER", help="serve FOLDER as model repo REPO")
    p.add_argument("--tiny", action="append", default=[], help="build and serve tiny model NAME as phantom-test/NAME")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    repos = dict(item.split("=", 1) for item in args.repos)
    for name in args.tiny:
        repos[f"phantom-test/{name}"] = save_tiny(name, Path(tempfile.mkdtemp(prefix=f"hub-{name}-")))
    hub = LocalHub(repos, port=args.port).start()
    print(f"HF_ENDPOINT={hub.url}  serving: {', '.join(hub.repos)}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
