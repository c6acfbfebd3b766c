"""Asset storage: one interface, a local folder or S3, content-addressed and never half-written.

Keys are ``<kind>/<sha[:2]>/<sha256><suffix>``: the same bytes are stored once whoever uploads them,
and a key names its content forever, so a cache entry pointing at a key can never point at other bytes.
"""

from __future__ import annotations

import abc
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from syncreel.store import s3


class AssetStoreError(RuntimeError):
    """A storage operation failed; the message names the URI and the problem."""


@dataclass(frozen=True)
class StoredAsset:
    uri: str
    key: str
    sha256: str
    size_bytes: int


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_key(sha256: str, kind: str, suffix: str) -> str:
    return f"{kind}/{sha256[:2]}/{sha256}{suffix}"


def manifest_key(run_id: str) -> str:
    """Where a run's manifest is stored (``put_named``)."""
    return f"runs/{run_id}/manifest.json"


def report_key(run_id: str) -> str:
    """Where a run's HTML QA report is stored, beside its manifest."""
    return f"runs/{run_id}/report.html"


class AssetStore(abc.ABC):
    def put_file(self, path: Path, *, kind: str, suffix: str | None = None) -> StoredAsset:
        """Store a file under its content address (a no-op when that content is there already)."""
        path = Path(path)
        sha = file_sha256(path)
        key = content_key(sha, kind, path.suffix if suffix is None else suffix)
        size = path.stat().st_size
        if not self._exists_key(key):
            self._write(path, key)
        return StoredAsset(uri=self._uri(key), key=key, sha256=sha, size_bytes=size)

    def put_named(self, path: Path, key: str) -> StoredAsset:
        """Store a file under a stable, human key (e.g. a run's manifest), replacing it atomically."""
        path = Path(path)
        self._write(path, key)
        return StoredAsset(uri=self._uri(key), key=key, sha256=file_sha256(path), size_bytes=path.stat().st_size)

    def put_text(self, text: str, key: str) -> StoredAsset:
        """Store text (UTF-8) under a stable, human key, as ``put_named`` does a file."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / PurePosixPath(key).name
            path.write_text(text, encoding="utf-8")
            return self.put_named(path, key)

    def uri_for(self, key: str) -> str:
        """The URI a named key (see ``put_named``) has in this store, whether written yet or not."""
        return self._uri(key)

    def exists(self, uri: str) -> bool:
        """Whether this store holds ``uri``; False for a URI of another store (an output remembered by a
        run that stored its files elsewhere, with the same database: it is made again here)."""
        try:
            key = self._key(uri)
        except AssetStoreError:
            return False
        return self._exists_key(key)

    @abc.abstractmethod
    def fetch(self, uri: str) -> Path:
        """A local, readable path holding the asset's bytes."""

    @abc.abstractmethod
    def url_for(self, uri: str, expires_s: int = 3600) -> str:
        """A URL a browser or another service can read the asset from."""

    @abc.abstractmethod
    def delete(self, uri: str) -> None: ...

    @abc.abstractmethod
    def _uri(self, key: str) -> str: ...

    @abc.abstractmethod
    def _key(self, uri: str) -> str: ...

    @abc.abstractmethod
    def _exists_key(self, key: str) -> bool: ...

    @abc.abstractmethod
    def _write(self, path: Path, key: str) -> None: ...


def _atomic_copy(source: Path, target: Path) -> None:
    """Copy to a temp file beside the target, fsync, rename: readers see all of it or nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class LocalAssetStore(AssetStore):
    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def _uri(self, key: str) -> str:
        return f"file://{self.root / key}"

    def _key(self, uri: str) -> str:
        path = Path(urlparse(uri).path) if uri.startswith("file://") else Path(uri)
        try:
            return str(path.resolve().relative_to(self.root))
        except ValueError:
            raise AssetStoreError(f"{uri}: not inside the asset folder {self.root}") from None

    def _exists_key(self, key: str) -> bool:
        return (self.root / key).is_file()

    def _write(self, path: Path, key: str) -> None:
        try:
            _atomic_copy(path, self.root / key)
        except OSError as exc:
            raise AssetStoreError(f"{self._uri(key)}: cannot write: {exc}") from exc

    def fetch(self, uri: str) -> Path:
        path = self.root / self._key(uri)
        if not path.is_file():
            raise AssetStoreError(f"{uri}: no such asset")
        return path

    def url_for(self, uri: str, expires_s: int = 3600) -> str:
        return self.fetch(uri).as_uri()

    def delete(self, uri: str) -> None:
        (self.root / self._key(uri)).unlink(missing_ok=True)


class S3AssetStore(AssetStore):
    """S3 or an S3-compatible store; credentials and region from the standard AWS configuration."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        cache_dir: Path,
        *,
        endpoint_url: str | None = None,
        multipart_threshold: int = 8 * 1024 * 1024,
    ):
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.cache_dir = Path(cache_dir)
        self.client = s3.client(endpoint_url)
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=max(multipart_threshold, 5 * 1024 * 1024)
        )

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._object_key(key)}"

    def _key(self, uri: str) -> str:
        parsed = urlparse(uri)
        object_key = parsed.path.lstrip("/")
        if (
            parsed.scheme != "s3"
            or parsed.netloc != self.bucket
            or not object_key.startswith(f"{self.prefix}/" if self.prefix else "")
        ):
            raise AssetStoreError(f"{uri}: not in this store (s3://{self.bucket}/{self.prefix})")
        return object_key[len(self.prefix) + 1 :] if self.prefix else object_key

    def _exists_key(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
            return True
        except ClientError as exc:
            if s3.is_missing(exc):
                return False
            raise AssetStoreError(f"{self._uri(key)}: {exc}") from exc
        except BotoCoreError as exc:
            raise AssetStoreError(f"{self._uri(key)}: {exc}") from exc

    def _write(self, path: Path, key: str) -> None:
        # S3 makes an object visible only when its PUT (or multipart completion) succeeds: atomic by design.
        try:
            self.client.upload_file(str(path), self.bucket, self._object_key(key), Config=self.transfer)
        except s3.S3_ERRORS as exc:
            raise AssetStoreError(f"{self._uri(key)}: upload failed: {exc}") from exc

    def fetch(self, uri: str) -> Path:
        key = self._key(uri)
        target = self.cache_dir / self.bucket / self._object_key(key)
        try:
            size = self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))["ContentLength"]
            if target.is_file() and target.stat().st_size == size:
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(handle)
            try:
                self.client.download_file(self.bucket, self._object_key(key), temp, Config=self.transfer)
                os.replace(temp, target)
            finally:
                Path(temp).unlink(missing_ok=True)
        except s3.S3_ERRORS as exc:
            raise AssetStoreError(f"{uri}: download failed: {exc}") from exc
        return target

    def url_for(self, uri: str, expires_s: int = 3600) -> str:
        return self.client.generate_presigned_url(
            "get_object", ExpiresIn=expires_s, Params={"Bucket": self.bucket, "Key": self._object_key(self._key(uri))}
        )

    def delete(self, uri: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._object_key(self._key(uri)))
        except s3.S3_ERRORS as exc:
            raise AssetStoreError(f"{uri}: delete failed: {exc}") from exc


def open_store(url: str, cache_dir: Path) -> AssetStore:
    """``file://FOLDER`` (relative or absolute) or ``s3://bucket/prefix``."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalAssetStore(Path(url.removeprefix("file://")))
    if parsed.scheme == "s3" and parsed.netloc:
        return S3AssetStore(parsed.netloc, parsed.path, cache_dir)
    raise ValueError(f"storage URL {url!r} is not supported; accepted: file://FOLDER or s3://bucket/prefix")
