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
    """A results folder: ``fs`` + ``root`` (a path inside that filesystem)."""

    fs: pafs.FileSystem
    root: str
    uri: str

    @classmethod
    def open(cls, uri: str | os.PathLike) -> Store:
        text = os.fspath(uri)
        if "://" not in text:
            path = Path(text).expanduser().absolute()
            return cls(pafs.LocalFileSystem(), str(path), str(path))
        try:
            fs, root = pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, OSError) as exc:
            raise StorageError(f"cannot open storage '{text}': {exc}") from None
        return cls(fs, root.rstrip("/"), text.rstrip("/"))

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def scheme(self) -> str:
        """The URI scheme (``s3``, ``gs``, ``abfs``, ...); ``file`` for a local folder."""
        return self.uri.split("://", 1)[0] if "://" in self.uri else "file"

    def fsspec(self):
        """This store's filesystem as an fsspec filesystem answering to its URI scheme: DuckDB
        reads ``s3://...`` through it (``register_filesystem``), with pyarrow's credentials and
        endpoint (the standard AWS variables and profiles, ``AWS_ENDPOINT_URL``), and nothing
        downloaded at run time."""
        from fsspec.implementations.arrow import ArrowFSWrapper

        wrapper = type(f"Phantom{self.scheme.title()}FS", (ArrowFSWrapper,),
                       {"protocol": self.scheme, "cachable": False})
        return wrapper(self.fs)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def child(self, name: str) -> Store:
        sep = "" if self.uri.endswith("/") else "/"
        return Store(self.fs, self.path(name), f"{self.uri}{sep}{name}")

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
        self.fs.create_dir(parent, recursive=True)
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
        self.fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
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
