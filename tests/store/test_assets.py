"""Asset stores: a local folder, and S3 through boto3 against moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

import boto3
import pytest

from syncreel.store.assets import AssetStore, AssetStoreError, LocalAssetStore, S3AssetStore, open_store

BUCKET = "syncreel-test"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AssetStore:
    if request.param == "local":
        return LocalAssetStore(tmp_path / "assets")
    endpoint = request.getfixturevalue("s3_endpoint")
    client = boto3.client("s3", endpoint_url=endpoint)
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET)
    return open_store(f"s3://{BUCKET}/{request.node.name.replace('[', '-').rstrip(']')}", tmp_path / "cache")


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_content_addressing_stores_same_bytes_once(store: AssetStore, tmp_path: Path):
    data = b"same bytes" * 1000
    first = store.put_file(write(tmp_path / "a.mp4", data), kind="deliverable")
    second = store.put_file(write(tmp_path / "b.mp4", data), kind="deliverable")
    assert first == second
    sha = hashlib.sha256(data).hexdigest()
    assert first.sha256 == sha and first.key == f"deliverable/{sha[:2]}/{sha}.mp4"
    assert first.size_bytes == len(data)
    assert store.exists(first.uri)
    other = store.put_file(write(tmp_path / "c.mp4", b"other"), kind="deliverable")
    assert other.uri != first.uri
    # Another store's URI (a database shared with a run that stored elsewhere) is not here.
    assert not store.exists("s3://some-other-bucket/deliverable/00/00.mp4")
    assert not store.exists(f"file://{tmp_path / 'elsewhere' / 'a.mp4'}")


def test_fetch_round_trip_and_delete(store: AssetStore, tmp_path: Path):
    data = os.urandom(50_000)
    stored = store.put_file(write(tmp_path / "x.flac", data), kind="reference_audio")
    assert store.fetch(stored.uri).read_bytes() == data
    store.delete(stored.uri)
    assert not store.exists(stored.uri)
    with pytest.raises(AssetStoreError, match=stored.key):
        store.fetch(stored.uri)


def test_put_named_overwrites(store: AssetStore, tmp_path: Path):
    key = "runs/run-1/manifest.json"
    store.put_named(write(tmp_path / "m1.json", b'{"v": 1}'), key)
    second = store.put_named(write(tmp_path / "m2.json", b'{"v": 2}'), key)
    assert second.uri.endswith(key)
    assert store.fetch(second.uri).read_bytes() == b'{"v": 2}'


def test_url_for_reads_the_bytes(store: AssetStore, tmp_path: Path):
    data = b"presigned" * 100
    stored = store.put_file(write(tmp_path / "p.mp4", data), kind="deliverable")
    url = store.url_for(stored.uri, expires_s=60)
    if isinstance(store, S3AssetStore):
        assert "X-Amz-Signature" in url or "Signature" in url
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - local file or the test server
        assert response.read() == data


def test_large_file_goes_multipart_and_round_trips(s3_endpoint: str, tmp_path: Path):
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="multipart-test")
    store = S3AssetStore(
        "multipart-test", "p", tmp_path / "cache", endpoint_url=s3_endpoint, multipart_threshold=5 * 1024 * 1024
    )
    data = os.urandom(12 * 1024 * 1024)
    stored = store.put_file(write(tmp_path / "big.mp4", data), kind="master")
    head = client.head_object(Bucket="multipart-test", Key=f"p/{stored.key}")
    assert head["ContentLength"] == len(data)
    assert "-" in head["ETag"], "a multipart upload's ETag carries its part count"
    assert store.fetch(stored.uri).read_bytes() == data


def test_local_writes_leave_no_temporary_files(tmp_path: Path):
    store = LocalAssetStore(tmp_path / "assets")
    for index in range(5):
        store.put_file(write(tmp_path / f"{index}.bin", os.urandom(1000)), kind="other")
    store.put_named(write(tmp_path / "m.json", b"{}"), "runs/r/manifest.json")
    files = [p for p in (tmp_path / "assets").rglob("*") if p.is_file()]
    assert len(files) == 6 and not [p for p in files if p.name.startswith(".") or p.suffix == ".tmp"]


def test_errors_name_the_uri(tmp_path: Path, s3_endpoint: str):
    local = LocalAssetStore(tmp_path / "assets")
    with pytest.raises(AssetStoreError, match="not inside the asset folder"):
        local.fetch("file:///etc/passwd")
    missing_bucket = S3AssetStore("no-such-bucket", "x", tmp_path / "cache", endpoint_url=s3_endpoint)
    with pytest.raises(AssetStoreError, match="s3://no-such-bucket/x/other/"):
        missing_bucket.put_file(write(tmp_path / "f.bin", b"data"), kind="other")
    with pytest.raises(ValueError, match="accepted: file://FOLDER or s3://bucket/prefix"):
        open_store("ftp://host/x", tmp_path)
