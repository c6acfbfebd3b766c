"""The flow in-process (programmatic use) under Prefect's test harness: tasks, artifacts, bad input.

The ``harness`` and ``embedded_state`` fixtures live in conftest.py."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import yaml
from prefect.artifacts import Artifact

from syncreel.schemas.brief import validate_brief
from syncreel.schemas.settings import get_settings
from syncreel.tasks.ingest import ReferenceRejected
from tests.fixtures.briefs import small_brief

pytestmark = pytest.mark.slow


def test_produce_campaign_in_process_publishes_manifest_and_artifacts(harness, embedded_state):
    from syncreel.flows.campaign import produce_campaign
    from syncreel.tasks.stage import listening

    brief_path = small_brief(embedded_state)
    events = []
    with listening(events.append):
        summary = produce_campaign(str(brief_path))
    assert summary.status in ("succeeded", "needs_review")
    assert len(summary.deliverables) == 4 and summary.generated >= 4  # 4 scenes, and any regenerations
    manifest = Path(summary.manifest_uri.removeprefix("file://"))
    assert manifest.is_file() and summary.run_id in manifest.read_text()
    table = Artifact.get("deliverables-small-test")
    markdown = Artifact.get("qa-small-test")
    assert table is not None and "tiktok" in str(table.data)
    assert markdown is not None and summary.run_id in str(markdown.data)
    stages = {event.stage for event in events if event.status in ("done", "cached", "flagged")}
    assert {"ingest", "generate", "qa_master", "assemble", "render", "qa_deliverable", "publish"} <= stages


def test_a_corrupt_reference_fails_the_run_with_its_id_and_file(harness, embedded_state):
    from syncreel.flows.campaign import produce_campaign
    from syncreel.store import runs
    from syncreel.tasks.stage import get_runtime

    brief_path = small_brief(embedded_state)
    data = yaml.safe_load(brief_path.read_text())
    broken = embedded_state / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    data["references"][2]["uri"] = str(broken)  # the motion clip
    brief = validate_brief(data, "test", base_uri=str(embedded_state))
    with pytest.raises(ReferenceRejected) as caught:
        produce_campaign(brief)
    assert "'bounce'" in str(caught.value) and "broken.mp4" in str(caught.value)
    with get_runtime().session() as session:
        run = runs.get_run(session)
        assert run.status == "failed" and "bounce" in (run.error or "")


def test_production_configuration_postgres_and_s3(harness, tmp_path, monkeypatch, postgres_url, s3_endpoint):
    """The same campaign with run state in PostgreSQL and assets in S3 (moto's server), then a re-run."""
    import boto3

    from syncreel.flows.campaign import produce_campaign
    from syncreel.store.assets import S3AssetStore
    from syncreel.tasks.stage import get_runtime

    boto3.client("s3").create_bucket(Bucket="campaigns")
    monkeypatch.setenv("SYNCREEL_DATABASE_URL", postgres_url)
    monkeypatch.setenv("SYNCREEL_STORAGE_URL", "s3://campaigns/syncreel")
    monkeypatch.setenv("SYNCREEL_WORK_DIR", str(tmp_path / "work"))
    get_settings.cache_clear()
    try:
        brief_path = small_brief(tmp_path)
        summary = produce_campaign(str(brief_path))
        assert summary.manifest_uri.startswith("s3://campaigns/syncreel/runs/")
        assert all(d.uri.startswith("s3://campaigns/syncreel/deliverable/") for d in summary.deliverables)
        store = get_runtime().store
        assert isinstance(store, S3AssetStore)
        keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="campaigns")["Contents"]]
        assert sum(k.startswith("syncreel/deliverable/") for k in keys) == 4
        manifest = json.loads(store.fetch(summary.manifest_uri).read_text())
        with urllib.request.urlopen(manifest["deliverables"][0]["url"], timeout=10) as response:  # noqa: S310
            assert response.read()[4:8] == b"ftyp"  # the presigned link serves the MP4
        again = produce_campaign(str(brief_path))
        assert again.run_id == summary.run_id and again.generated == 0
        assert not any(d.cached is False for d in again.deliverables)
    finally:
        get_settings.cache_clear()


def test_a_scene_can_continue_the_previous_scenes_last_frames(harness, embedded_state):
    from syncreel.flows.campaign import produce_campaign
    from syncreel.store import runs
    from syncreel.tasks.stage import get_runtime

    brief_path = small_brief(embedded_state)
    data = yaml.safe_load(brief_path.read_text())
    data["platforms"] = ["square"]
    data["scenes"][1]["continue_previous"] = True
    data["scenes"][1]["references"] = [r for r in data["scenes"][1]["references"] if r != "bounce"]
    data["qa"] = {"max_regenerations": 0}
    brief = validate_brief(data, "test", base_uri=str(embedded_state))
    summary = produce_campaign(brief)
    with get_runtime().session() as session:
        generations = runs.run_detail(session, summary.run_id)["generations"]
    first, second = data["scenes"][0]["id"], data["scenes"][1]["id"]
    used = {g["scene_id"]: g["parameters"].get("references_used") for g in generations}
    # The second scene starts from the first one's last frames (its spoken lines drive the mouth too,
    # so the built-in model names the mode after the voice: audio-to-video with a video prefix).
    assert f"{first}:last-frames" in used[second] and not any(":last-frames" in r for r in used[first])

    data["scenes"][0]["continue_previous"] = True
    with pytest.raises(ValueError, match="first scene has no previous scene"):
        validate_brief(data, "test")
