"""The campaign inbox's two backends (a folder, an S3 prefix on moto's server): what is waiting, what a
brief reads as, and where handled and rejected briefs go. The flow itself is tested with real servers in
tests/test_orchestration.py."""

from __future__ import annotations

import json

import boto3
import pytest

from syncreel.flows.inbox import FolderInbox, open_inbox


def brief_text(campaign_id: str) -> str:
    brief = {
        "campaign_id": campaign_id,
        "brand": {"name": "Brand"},
        "languages": ["en"],
        "platforms": ["square"],
        "scenes": [{"id": "s1", "prompt": "A yellow ball bouncing on a beach.", "duration_s": 1}],
    }
    return json.dumps(brief)


def check_inbox(inbox, base_uri: str) -> list[str]:  # noqa: ANN001 - FolderInbox or S3Inbox
    assert inbox.names() == ["a.json", "b.json", "bad.json"]
    brief = inbox.read("a.json")
    assert (brief.campaign_id, brief.base_uri) == ("inbox-a", base_uri)
    with pytest.raises(ValueError, match="campaign_id"):
        inbox.read("bad.json")
    inbox.move("a.json", "handled", f"a-{brief.content_hash()[:12]}.json")
    inbox.move("bad.json", "rejected", "bad.json", note="campaign_id: missing")
    assert inbox.names() == ["b.json"]
    return [brief.content_hash()[:12]]


def test_folder_inbox_lists_reads_and_moves(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.json").write_text(brief_text(f"inbox-{name}"))
    (tmp_path / "bad.json").write_text(json.dumps({"brand": {"name": "B"}}))
    (tmp_path / "notes.txt").write_text("not a brief")
    inbox = open_inbox(f"file://{tmp_path}")
    assert isinstance(inbox, FolderInbox)
    (digest,) = check_inbox(inbox, str(tmp_path.resolve()))
    assert (tmp_path / "handled" / f"a-{digest}.json").is_file()
    assert (tmp_path / "rejected" / "bad.json.errors.txt").read_text() == "campaign_id: missing"


def test_s3_inbox_lists_top_level_briefs_and_moves_them(s3_endpoint):
    client = boto3.client("s3")
    client.create_bucket(Bucket="briefs")
    for name in ("a", "b"):
        client.put_object(Bucket="briefs", Key=f"inbox/{name}.json", Body=brief_text(f"inbox-{name}").encode())
    client.put_object(Bucket="briefs", Key="inbox/bad.json", Body=json.dumps({"brand": {"name": "B"}}).encode())
    client.put_object(Bucket="briefs", Key="inbox/handled/old.json", Body=brief_text("inbox-old").encode())
    (digest,) = check_inbox(open_inbox("s3://briefs/inbox"), "s3://briefs/inbox")
    keys = sorted(item["Key"] for item in client.list_objects_v2(Bucket="briefs")["Contents"])
    assert keys == [
        "inbox/b.json",
        f"inbox/handled/a-{digest}.json",
        "inbox/handled/old.json",
        "inbox/rejected/bad.json",
        "inbox/rejected/bad.json.errors.txt",
    ]
