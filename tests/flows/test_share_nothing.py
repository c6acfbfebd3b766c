"""Machines that share nothing but the services: a GPU-pool worker and a CPU-pool worker, each with its own
working folder (its cwd, SYNCREEL_WORK_DIR, PREFECT_HOME and TMPDIR) and no disk in common, produce a campaign
whose only shared state is Postgres (syncreel's and Prefect's), the Prefect server and an S3 API server (moto,
on 127.0.0.1). A third process, in its own empty folder, reads the manifest through syncreel's store and
fetches every deliverable it links, by its s3:// URI and by its presigned URL.

The flow runs still find their code through SYNCREEL_PROJECT_DIR (this checkout, the deployments' working
directory): that is code, as an image's copy would be, not state; nothing a run makes is written there.
Marked slow: one stack (about a minute to start on two cores) and one campaign.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.fixtures.stack import (
    ROOT,
    Stack,
    Worker,
    check_stored_once,
    own_folder,
    running_stack,
    s3_objects,
    tiny_brief,
)

pytestmark = pytest.mark.slow

BUCKET = "syncreel-share-nothing"
SIZES = {"square": (160, 160), "tiktok": (144, 256)}  # tiny_brief's platform overrides


def resolve_manifest(manifest_uri: str) -> list[dict[str, Any]]:
    """Run in the third folder: every deliverable the manifest links, fetched by its URI (through syncreel's
    store) and by its presigned URL, each probed."""
    from syncreel.media.probe import probe
    from syncreel.schemas.settings import get_settings
    from syncreel.store.assets import file_sha256, open_store

    store = open_store(get_settings().storage_url, Path("cache"))
    manifest = json.loads(store.fetch(manifest_uri).read_text())
    found = []
    for deliverable in manifest["deliverables"]:
        linked = Path("linked") / f"{deliverable['platform']}.mp4"
        linked.parent.mkdir(exist_ok=True)
        with urllib.request.urlopen(deliverable["url"], timeout=60) as answer:
            linked.write_bytes(answer.read())
        for via, path in (("uri", store.fetch(deliverable["uri"])), ("url", linked)):
            info = probe(path)
            assert info.video is not None and info.audio is not None, path
            found.append(
                {
                    "platform": deliverable["platform"],
                    "via": via,
                    "path": str(path.resolve()),
                    "format": info.format,
                    "size": (info.video.width, info.video.height),
                    "bytes": path.stat().st_size,
                    "sha256": file_sha256(path),
                }
            )
    return found


def files_by_hash(folder: Path, newer_than: float = 0.0) -> dict[str, Path]:
    """The files under ``folder`` (not in .git or .venv) modified after ``newer_than``, by content."""
    found = {}
    for top, subfolders, names in os.walk(folder):
        subfolders[:] = [name for name in subfolders if name not in (".git", ".venv")]
        for path in (Path(top) / name for name in names):
            if path.is_file() and path.stat().st_mtime > newer_than:
                found[hashlib.sha256(path.read_bytes()).hexdigest()] = path
    return found


def check_folders(stack: Stack, run_id: str, started: float) -> dict[str, str]:
    """Each worker's folder holds what it made or fetched, and the checkout nothing the run made; returns the
    run's deliverables (sha256 → platform)."""
    folder = stack.folder
    delivered = dict(
        stack.state(
            "select a.sha256, d.platform from deliverables d join assets a on a.id = d.asset_id "
            f"where d.run_id = '{run_id}'"
        )
    )
    masters = {
        sha
        for (sha,) in stack.state(
            "select a.sha256 from generations g join assets a on a.id = g.asset_id "
            f"where g.run_id = '{run_id}' and g.status = 'succeeded'"
        )
    }
    gpu_files, cpu_files = files_by_hash(folder / "gpu-0"), files_by_hash(folder / "cpu-0")
    # The GPU worker's flow runs worked in its folder (what they fetched is cached there), and no deliverable
    # was ever on its disk; the masters it made reached the CPU worker through S3 (in that one's store cache).
    assert any(path.is_relative_to(folder / "gpu-0" / "work") for path in gpu_files.values()), gpu_files
    assert not set(delivered) & set(gpu_files), [gpu_files[h] for h in set(delivered) & set(gpu_files)]
    assert masters <= set(cpu_files), masters - set(cpu_files)
    made = {sha for (sha,) in stack.state("select sha256 from assets")}
    in_checkout = made & set(files_by_hash(ROOT, newer_than=started))
    assert not in_checkout, "the run wrote into the checkout (code, not state)"
    return delivered


def resolve_from_a_third_folder(stack: Stack, manifest_uri: str) -> list[dict[str, Any]]:
    """``resolve_manifest`` in a process of its own, in an empty folder, without the state database."""
    third = stack.folder / "third"
    third.mkdir()
    env = {**stack.env, **own_folder(third), "PYTHONPATH": str(ROOT)}
    env.pop("SYNCREEL_DATABASE_URL")  # the manifest and the store are all it needs
    resolved = subprocess.run(
        [sys.executable, "-c", READ_MANIFEST, manifest_uri],
        env=env,
        cwd=third,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resolved.returncode == 0, resolved.stderr[-4000:]
    found = json.loads(resolved.stdout)
    assert all(Path(f["path"]).is_relative_to(third) for f in found), found
    return found


def test_two_workers_with_their_own_folders_share_only_the_services(
    postgres_url: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
):
    folder = tmp_path_factory.mktemp("share-nothing")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    settings = {"SYNCREEL_STORAGE_URL": f"s3://{BUCKET}/assets", **own_folder(folder / "client")}
    workers = {
        name: Worker(pool, limit, {**own_folder(folder / name), **extra}, folder / name)
        for name, pool, limit, extra in (
            ("gpu-0", "syncreel-gpu", 1, {"CUDA_VISIBLE_DEVICES": "0"}),
            ("cpu-0", "syncreel-cpu", 2, {}),
        )
    }
    with running_stack(postgres_url, folder, settings, workers, gpus=1) as stack:
        brief = tiny_brief(folder / "client" / "brief.yaml", "share-nothing", scenes=2)
        started = time.time()
        done = stack.syncreel("submit", str(brief), "--json")
        assert done.returncode in (0, 3), done.stdout + done.stderr
        outcome = json.loads(done.stdout)
        assert outcome["flow_run_state"] == "Completed", outcome
        run_id = outcome["run_id"]
        worker_of = {r[0].split("-")[0]: r[2] for r in stack.scene_runs("share-nothing") if r[1] == "COMPLETED"}
        assert worker_of == {"s1": "gpu-0", "s2": "gpu-0"}, worker_of
        check_stored_once(postgres_url, s3_objects(s3, BUCKET), BUCKET, run_id)
        delivered = check_folders(stack, run_id, started)
        ((manifest_uri,),) = stack.state(f"select manifest_uri from campaign_runs where id = '{run_id}'")
        found = resolve_from_a_third_folder(stack, manifest_uri)
        sizes = dict(stack.state("select sha256, size_bytes from assets"))
    assert sorted((f["platform"], f["via"]) for f in found) == [
        ("square", "uri"),
        ("square", "url"),
        ("tiktok", "uri"),
        ("tiktok", "url"),
    ]
    for f in found:  # each an MP4 of its platform's size, the very file the run delivered
        assert "mp4" in f["format"] and tuple(f["size"]) == SIZES[f["platform"]], f
        assert delivered.get(f["sha256"]) == f["platform"] and f["bytes"] == sizes[f["sha256"]], f
    print(
        f"run {run_id} ({outcome['status']}): scenes on gpu-0, {len(delivered)} deliverables in S3, "
        f"resolved from a third folder by URI and URL: "
        + ", ".join(f"{f['platform']}/{f['via']} {f['bytes']} B" for f in found)
    )


READ_MANIFEST = (
    "import json, sys\n"
    "from tests.flows.test_share_nothing import resolve_manifest\n"
    "print(json.dumps(resolve_manifest(sys.argv[1])))\n"
)
