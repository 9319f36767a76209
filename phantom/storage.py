"""Results storage: local paths, shared filesystems, or object-store URIs pyarrow understands.

All writes are atomic: a file is written under ``<name>.tmp`` and renamed into place (on an
object store a single PUT is already atomic, so the object is written directly).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from phantom.errors import StorageError
from phantom.layout import TMP_SUFFIX


@dataclass(frozen=True)
class Store:
    """A results folder: ``fs`` + ``root`` (a path inside that filesystem). ``uri`` is the
    folder's URI without credentials (:mod:`phantom.cloud`): what is shown, written down and
    handed to workers; ``location`` its parts (None for a local folder)."""

    fs: pafs.FileSystem
    root: str
    uri: str
    location: object = None  # phantom.cloud.Location

    @classmethod
    def open(cls, uri: str | os.PathLike) -> Store:
        from phantom import cloud

        text = os.fspath(uri)
        if text.startswith("file://"):
            text = text[len("file://"):]
        if "://" not in text:
            path = Path(text).expanduser().absolute()
            return cls(pafs.LocalFileSystem(), str(path), str(path))
        loc = cloud.parse(text)
        cloud.set_secrets(loc)  # the clean URI opens the same store here and on the workers
        try:
            fs = _filesystem(loc)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as exc:
            raise StorageError(cloud.redact(f"cannot open storage '{loc.uri}': {exc}")) from None
        return cls(fs, loc.path.rstrip("/"), loc.uri, loc)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def scheme(self) -> str:
        """The URI scheme (``s3``, ``gs``, ``abfs``, ...); ``file`` for a local folder."""
        if self.location is not None:
            return self.location.scheme
        return self.uri.split("://", 1)[0] if "://" in self.uri else "file"

    @property
    def name(self) -> str:
        """The folder's own name (the last part of its path)."""
        return self.root.rstrip("/").rsplit("/", 1)[-1]

    def parent_uri(self) -> str:
        """The URI of the folder holding this one (a sweep folder's storage root)."""
        if self.location is None:
            return os.path.dirname(self.root.rstrip("/"))
        loc = self.location
        parent = loc.path.rstrip("/").rsplit("/", 1)[0] if "/" in loc.path.rstrip("/") else ""
        return type(loc)(loc.scheme, loc.prefix, parent, loc.options, loc.secrets, loc.in_netloc).uri

    def fsspec(self, protocol: str | None = None):
        """This store's filesystem as an fsspec filesystem answering to ``protocol`` (default:
        its scheme): DuckDB reads through it (``register_filesystem``) with the same settings
        as every write, and nothing downloaded at run time. Paths are ``PROTOCOL://`` +
        :attr:`root` + ..., with no credentials and no query string in them."""
        return fsspec_wrapper(self.fs, protocol or self.scheme)

    def tune_filesystem(self):
        """The filesystem Ray Tune keeps its state in: this store's, pickled as its clean URI
        (Tune writes its settings into the folder: no credential may travel with them)."""
        return reopening_filesystem(self.uri) if not self.is_local else self.fs

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def duckdb_path(self, *parts: str) -> str:
        """What DuckDB reads for ``parts``: a local path, or ``SCHEME://`` + the path inside the
        store, read through :meth:`fsspec` (no credentials, no query string, no ``user@``)."""
        if self.is_local:
            return self.path(*parts)
        return f"{self.scheme}://" + "/".join([self.root, *parts])

    def child(self, name: str) -> Store:
        """The folder ``name`` inside this one (joined to the path, never to a query string)."""
        if self.location is None:
            return Store(self.fs, self.path(name), self.path(name))
        loc = self.location.child(name)
        return Store(self.fs, loc.path, loc.uri, loc)

    # -- files ---------------------------------------------------------------------------------

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def list(self, folder: str, suffix: str = ".parquet") -> list[str]:
        """Base names in ``folder`` ending in ``suffix`` (temporary files never match)."""
        sel = pafs.FileSelector(self.path(folder), allow_not_found=True)
        return sorted(
            info.base_name
            for info in self.fs.get_file_info(sel)
            if info.type == pafs.FileType.File and info.base_name.endswith(suffix)
        )

    def write_table(self, table: pa.Table, *parts: str, **options) -> str:
        """Write ``table`` as Parquet at ``parts`` atomically (``options``: pq.write_table's);
        returns the final path."""
        final = self.path(*parts)
        parent = final.rsplit("/", 1)[0]
        self.makedirs(parent)
        if not self.is_local:
            pq.write_table(table, final, filesystem=self.fs, **options)
            return final
        tmp = f"{final}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
        try:
            pq.write_table(table, tmp, filesystem=self.fs, **options)
            os.replace(tmp, final)  # atomic on POSIX, also over an existing file
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return final

    def write_text(self, text: str, *parts: str) -> str:
        final = self.path(*parts)
        self.makedirs(final.rsplit("/", 1)[0])
        if not self.is_local:
            with self.fs.open_output_stream(final) as out:
                out.write(text.encode())
            return final
        tmp = f"{final}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, final)
        except BaseException:  # a full disk, a quota: no half-written *.tmp left behind
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return final

    def makedirs(self, path: str) -> None:
        """Create ``path``'s folders where the store has folders. Blob storage without a
        hierarchical namespace has none, and pyarrow's create_dir there only reads the
        container's properties, which a container-scoped SAS may not: skipped."""
        if not _flat(self):
            self.fs.create_dir(path, recursive=True)

    def read_text(self, *parts: str) -> str:
        with self.fs.open_input_stream(self.path(*parts)) as src:
            return src.read().decode()

    def read_table(self, *parts: str) -> pa.Table:
        return pq.read_table(self.path(*parts), filesystem=self.fs)

    def delete(self, *parts: str) -> None:
        try:
            self.fs.delete_file(self.path(*parts))
        except FileNotFoundError:
            pass

    # -- the layout (phantom.layout) -----------------------------------------------------------

    def completed_trial_ids(self) -> set[str]:
        """Ids whose trial record exists, loose or compacted: complete results (any status)."""
        from phantom.results import completed_ids

        return completed_ids(self)


# ----------------------------------------------------------------------------------------------
# filesystems per scheme, DuckDB's reads, Tune's state


def _flat(store: Store) -> bool:
    from phantom import cloud

    return store.location is not None and store.scheme in cloud.AZURE_SCHEMES


def _filesystem(loc) -> pafs.FileSystem:
    from phantom import cloud

    if loc.scheme in cloud.GCS_SCHEMES:
        return cloud.gcs_filesystem(loc)
    if loc.scheme in cloud.AZURE_SCHEMES:
        return cloud.azure_filesystem(loc)
    fs, _ = pafs.FileSystem.from_uri(loc.uri)
    return fs


class _RangeFile:
    """A read-only file over a pyarrow random-access file whose ``seek`` only moves a
    position and whose reads never ask past the end: pyarrow's GCS file answers a read at
    the end with HTTP 416 (apache/arrow#38854), and DuckDB seeks there."""

    def __init__(self, raw, path: str) -> None:
        self.raw, self.path, self.mode = raw, path, "rb"
        self.size = raw.size()
        self.pos = 0
        self.closed = False

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: 0, 1: self.pos, 2: self.size}[whence] + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        if end <= self.pos:
            return b""
        data = self.raw.read_at(end - self.pos, self.pos)
        self.pos += len(data)
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fsspec_wrapper(fs: pafs.FileSystem, protocol: str):
    from fsspec.implementations.arrow import ArrowFSWrapper

    def _open(self, path, mode="rb", block_size=None, seekable=True, **kwargs):
        if mode == "rb":
            return _RangeFile(self.fs.open_input_file(self._strip_protocol(path)), path)
        return ArrowFSWrapper._open(self, path, mode, block_size, seekable, **kwargs)

    def _strip_protocol(cls, path):  # PROTOCOL://bucket/path -> bucket/path, whatever the scheme
        path = path[0] if isinstance(path, list) else str(path)
        prefix = f"{protocol}://"
        return (path[len(prefix):] if path.startswith(prefix) else path).rstrip("/")

    wrapper = type(f"Phantom{protocol.title()}FS", (ArrowFSWrapper,),
                   {"protocol": protocol, "cachable": False, "_open": _open,
                    "_strip_protocol": classmethod(_strip_protocol)})
    return wrapper(fs)


def reopening_filesystem(uri: str) -> pafs.FileSystem:
    """A pyarrow filesystem that opens ``uri``'s store (from the environment's settings) and
    pickles as ``uri`` alone."""
    from pyarrow.fs import PyFileSystem

    return PyFileSystem(_Reopening(uri))


class _Reopening(pafs.FileSystemHandler):
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._fs = None

    def __reduce__(self):
        return (_Reopening, (self.uri,))

    @property
    def fs(self) -> pafs.FileSystem:
        if self._fs is None:
            self._fs = Store.open(self.uri).fs
        return self._fs

    def __eq__(self, other) -> bool:
        return isinstance(other, _Reopening) and other.uri == self.uri

    def get_type_name(self) -> str:
        return "phantom-reopening"

    def normalize_path(self, path):
        return self.fs.normalize_path(path)

    def get_file_info(self, paths):
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.fs.get_file_info(selector)

    def create_dir(self, path, recursive):
        from phantom import cloud

        if self.uri.split("://", 1)[0] not in cloud.AZURE_SCHEMES:  # no folders in blob storage
            self.fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.fs.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise OSError("refusing to delete the root of a store")

    def delete_file(self, path):
        self.fs.delete_file(path)

    def move(self, src, dest):
        self.fs.move(src, dest)

    def copy_file(self, src, dest):
        self.fs.copy_file(src, dest)

    def open_input_stream(self, path):
        return self.fs.open_input_stream(path)

    def open_input_file(self, path):
        return self.fs.open_input_file(path)

    def open_output_stream(self, path, metadata):
        return self.fs.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path, metadata):
        return self.fs.open_append_stream(path, metadata=metadata)
