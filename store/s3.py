"""S3 and S3-compatible stores: the one module that talks to boto3 (store/assets.py builds on it).

Credentials and region come from the standard AWS configuration, the endpoint from ``AWS_ENDPOINT_URL``
(an S3-compatible store: MinIO, moto, R2).
"""

from __future__ import annotations

import os
import random
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as LostConnection

# What a failed S3 call raises: boto3's own errors, botocore's (network, credentials) and the service's.
S3_ERRORS = (Boto3Error, BotoCoreError, ClientError)
# Every call (uploads, downloads, listings) is tried up to 5 times on throttling, 5xx answers and dropped
# connections, with botocore's exponential backoff and jitter; a missing object or bucket fails at once.
RETRIES = Config(retries={"total_max_attempts": 5, "mode": "standard"})
# botocore waits 50 ms × 2^n (jittered) between those tries when the error is not throttling, so its five
# tries span under a second: a store restarting, or a network blip, outlasts them and fails the stage (most
# stages have no task-level retry). A refused or dropped connection is therefore tried again after
# botocore gives up, 1, 2, 4, 8, 8 and 8 s later (±25 %): about half a minute in all.
OUTAGE_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 8.0, 8.0)


class S3DownloadError(RuntimeError):
    """An object could not be downloaded; the message names its URI and the problem."""


def client(endpoint_url: str | None = None) -> Any:
    """An S3 client (``endpoint_url``: default ``AWS_ENDPOINT_URL``) that rides out a store's short outage."""
    s3 = boto3.client("s3", endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL"), config=RETRIES)
    # Registered after botocore's own retry handler: it answers only when that one has given up.
    s3.meta.events.register("needs-retry.s3", _retry_lost_connection)
    return s3


def _retry_lost_connection(attempts: int, caught_exception: Exception | None = None, **_: Any) -> float | None:
    """The seconds to wait before trying a call again whose connection was refused or dropped, once
    botocore's own tries are spent (None: not this handler's to retry)."""
    extra = attempts - RETRIES.retries["total_max_attempts"]
    if not isinstance(caught_exception, (LostConnection, HTTPClientError)) or not 0 <= extra < len(OUTAGE_DELAYS_S):
        return None
    return OUTAGE_DELAYS_S[extra] * random.uniform(0.75, 1.25)


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``."""
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def download(uri: str, folder: Path) -> Path:
    """Download ``s3://bucket/key`` into ``folder`` under the key's last name."""
    bucket, key = split_uri(uri)
    target = folder / (PurePosixPath(key).name or "object")
    try:
        client().download_file(bucket, key, str(target))
    except S3_ERRORS as exc:
        raise S3DownloadError(f"cannot download {uri}: {exc}") from exc
    return target


def is_missing(exc: ClientError) -> bool:
    """Whether a failed call says the object is not there."""
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


class S3Folder:
    """The objects under one prefix of a bucket, by name: list the top level, read, write, copy, delete."""

    def __init__(self, bucket: str, prefix: str):
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = client()

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def names(self) -> list[str]:
        """The objects at the top level of the prefix (not in its sub-folders), sorted."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "", Delimiter="/"
        )
        return sorted(item["Key"].rsplit("/", 1)[-1] for page in pages for item in page.get("Contents", []))

    def read(self, name: str, limit: int) -> bytes:
        """At most ``limit + 1`` bytes of the object (so a caller can tell one over its limit)."""
        return bytes(self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read(limit + 1))

    def write(self, name: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=body)

    def copy(self, name: str, new_name: str) -> None:
        self.client.copy_object(
            Bucket=self.bucket, Key=self.key(new_name), CopySource={"Bucket": self.bucket, "Key": self.key(name)}
        )

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(name))
