"""The sweep lock on GCS and Azure Blob storage, with each store's conditional writes (as
:class:`~phantom.orchestrator.lock_backends.S3Lock` on S3; :mod:`phantom.orchestrator.lock`
decides when a holder is stale; :class:`~phantom.orchestrator.lock_backends.ConditionalLock`
holds the protocol, these say how each store writes, reads and deletes under a condition):

- :class:`GcsLock`: created with ``ifGenerationMatch=0`` (only when no object exists: of
  several creators exactly one succeeds), refreshed and taken over with ``ifGenerationMatch``
  on the generation last seen, released with a conditional DELETE. Through the JSON API with
  the same settings as the filesystem (:func:`phantom.cloud_check.gcs_session`).
- :class:`AzureLock`: created with ``If-None-Match: *``, refreshed and taken over with
  ``If-Match`` on the blob's ETag, released with a conditional delete (azure-storage-blob).
"""

from __future__ import annotations

import json

from phantom import cloud, cloud_check
from phantom.orchestrator.lock_backends import ConditionalLock
from phantom.storage import Store


class GcsLock(ConditionalLock):
    """GCS: generation preconditions on the lock object."""

    kind = "atomic (GCS conditional writes: ifGenerationMatch)"

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.session, self.api = cloud_check.gcs_session(store.location)

    def _object_url(self) -> str:
        return f"{self.api}/storage/v1/b/{cloud.quote_path(self.bucket)}/o/{cloud.quote_path(self.key)}"

    def _put_if(self, text: str, version: str | None) -> str | None:
        """A multipart upload with ``ifGenerationMatch`` (``0``: absent): the simple upload of
        some emulators ignores the precondition."""
        boundary = "phantom-lock-boundary"
        meta = json.dumps({"name": self.key, "contentType": "application/json"})
        body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n"
                f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{text}\r\n--{boundary}--\r\n").encode()
        r = self.session.post(
            f"{self.api}/upload/storage/v1/b/{cloud.quote_path(self.bucket)}/o",
            params={"uploadType": "multipart", "ifGenerationMatch": "0" if version is None else version}, data=body,
            headers={"Content-Type": f"multipart/related; boundary={boundary}"}, timeout=cloud_check.TIMEOUT_S)
        if r.status_code in (412, 409):
            return None
        r.raise_for_status()
        return str(r.json()["generation"])

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

    def _delete_if(self, version: str | None) -> None:
        r = self.session.delete(self._object_url(), params={"ifGenerationMatch": version},
                                timeout=cloud_check.TIMEOUT_S)
        if r.status_code not in (200, 204, 404, 412):
            r.raise_for_status()


class AzureLock(ConditionalLock):
    """Azure Blob storage: ETag preconditions on the lock blob."""

    kind = "atomic (Azure conditional writes: If-None-Match / If-Match)"

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.blob = cloud_check.azure_service(store.location, retries=2).get_blob_client(self.bucket, self.key)

    def _put_if(self, text: str, version: str | None) -> str | None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        kw = {"overwrite": False} if version is None else {
            "overwrite": True, "etag": version, "match_condition": MatchConditions.IfNotModified}
        try:
            return self.blob.upload_blob(text.encode(), **kw)["etag"]
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return None
        except Exception as exc:
            if cloud_check.azure_code(exc) in ("ConditionNotMet", "BlobAlreadyExists", "412", "409"):
                return None
            raise

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

    def _delete_if(self, version: str | None) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        try:
            self.blob.delete_blob(etag=version, match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            pass
