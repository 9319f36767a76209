"""The sweep lock on GCS and Azure Blob storage, with each store's conditional writes (as
:class:`~phantom.orchestrator.lock_backends.S3Lock` on S3; :mod:`phantom.orchestrator.lock`
decides when a holder is stale):

- :class:`GcsLock`: created with ``ifGenerationMatch=0`` (only when no object exists: of
  several creators exactly one succeeds), refreshed and taken over with ``ifGenerationMatch``
  on the generation last seen, released with a conditional DELETE. Through the JSON API with
  the same settings as the filesystem (:func:`phantom.cloud_check.gcs_session`).
- :class:`AzureLock`: created with ``If-None-Match: *``, refreshed and taken over with
  ``If-Match`` on the blob's ETag, released with a conditional delete (azure-storage-blob).
"""

from __future__ import annotations

import json

from phantom import cloud, cloud_check, layout
from phantom.storage import Store


class GcsLock:
    """GCS: generation preconditions on the lock object."""

    kind = "atomic (GCS conditional writes: ifGenerationMatch)"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.session, self.api = cloud_check.gcs_session(store.location)
        bucket, _, prefix = store.root.partition("/")
        self.bucket = bucket
        self.key = f"{prefix}/{layout.LOCK_FILE}" if prefix else layout.LOCK_FILE
        self.version: str | None = None  # the generation this driver last wrote

    def _object_url(self) -> str:
        return f"{self.api}/storage/v1/b/{cloud.quote_path(self.bucket)}/o/{cloud.quote_path(self.key)}"

    def _put(self, text: str, generation: str) -> str | None:
        """Upload the lock if its generation is ``generation`` (``"0"``: absent); the new
        generation, or None when the precondition failed. A multipart upload: the simple
        upload of some emulators ignores the precondition."""
        boundary = "phantom-lock-boundary"
        meta = json.dumps({"name": self.key, "contentType": "application/json"})
        body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n"
                f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{text}\r\n--{boundary}--\r\n").encode()
        r = self.session.post(
            f"{self.api}/upload/storage/v1/b/{cloud.quote_path(self.bucket)}/o",
            params={"uploadType": "multipart", "ifGenerationMatch": generation}, data=body,
            headers={"Content-Type": f"multipart/related; boundary={boundary}"}, timeout=cloud_check.TIMEOUT_S)
        if r.status_code in (412, 409):
            return None
        r.raise_for_status()
        return str(r.json()["generation"])

    def create(self, text: str) -> bool:
        self.version = self._put(text, "0")
        return self.version is not None

    def read(self) -> tuple[dict | None, str | None]:
        r = self.session.get(self._object_url(), params={"alt": "media"}, timeout=cloud_check.TIMEOUT_S)
        if r.status_code == 404:
            return None, None
        r.raise_for_status()
        generation = r.headers.get("x-goog-generation")
        try:
            return json.loads(r.content), generation
        except ValueError:
            return {}, generation

    def take_over(self, text: str, version) -> bool:
        if version is None:
            return False
        self.version = self._put(text, version)
        return self.version is not None

    def beat(self, text: str, token: str) -> bool:
        generation = self._put(text, self.version)
        if generation is None:  # swapped under us, unless our own last write landed unanswered
            current, generation = self.read()
            if not current or current.get("token") != token:
                return False
            generation = self._put(text, generation)
            if generation is None:
                return False
        self.version = generation
        return True

    def release(self, token: str) -> None:
        current, generation = self.read()
        if not current or current.get("token") != token:
            return  # taken over: not ours to delete
        r = self.session.delete(self._object_url(), params={"ifGenerationMatch": generation},
                                timeout=cloud_check.TIMEOUT_S)
        if r.status_code not in (200, 204, 404, 412):
            r.raise_for_status()


class AzureLock:
    """Azure Blob storage: ETag preconditions on the lock blob."""

    kind = "atomic (Azure conditional writes: If-None-Match / If-Match)"

    def __init__(self, store: Store) -> None:
        self.store = store
        container, _, prefix = store.root.partition("/")
        key = f"{prefix}/{layout.LOCK_FILE}" if prefix else layout.LOCK_FILE
        self.blob = cloud_check.azure_service(store.location, retries=2).get_blob_client(container, key)
        self.version: str | None = None  # the ETag this driver last wrote

    def _put(self, text: str, **condition) -> str | None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        kw = {"overwrite": False} if condition.get("absent") else {
            "overwrite": True, "etag": condition["etag"], "match_condition": MatchConditions.IfNotModified}
        try:
            return self.blob.upload_blob(text.encode(), **kw)["etag"]
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return None
        except Exception as exc:
            if cloud_check.azure_code(exc) in ("ConditionNotMet", "BlobAlreadyExists", "412", "409"):
                return None
            raise

    def create(self, text: str) -> bool:
        self.version = self._put(text, absent=True)
        return self.version is not None

    def read(self) -> tuple[dict | None, str | None]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            down = self.blob.download_blob()
            data, etag = down.readall(), down.properties.etag
        except ResourceNotFoundError:
            return None, None
        try:
            return json.loads(data), etag
        except ValueError:
            return {}, etag

    def take_over(self, text: str, version) -> bool:
        if version is None:
            return False
        self.version = self._put(text, etag=version)
        return self.version is not None

    def beat(self, text: str, token: str) -> bool:
        etag = self._put(text, etag=self.version)
        if etag is None:
            current, etag = self.read()
            if not current or current.get("token") != token:
                return False
            etag = self._put(text, etag=etag)
            if etag is None:
                return False
        self.version = etag
        return True

    def release(self, token: str) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        current, etag = self.read()
        if not current or current.get("token") != token:
            return
        try:
            self.blob.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            pass
