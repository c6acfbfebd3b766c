"""Brief validation: the example is valid; a brief with many mistakes gets every one, with its field path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from syncreel.schemas.brief import MAX_CLIP_REFERENCES, MAX_IMAGE_REFERENCES, BriefError, load_brief, validate_brief
from syncreel.schemas.platforms import PLATFORMS, resolve_platforms

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "briefs" / "lumen-fizz.yaml"


def example_data() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def issues_of(data: dict) -> dict[str, str]:
    with pytest.raises(BriefError) as caught:
        validate_brief(data, "test.yaml")
    return {issue.loc: issue.message for issue in caught.value.issues}


def test_example_brief_is_valid_and_resolves_next_to_itself():
    brief = load_brief(EXAMPLE)
    assert brief.languages == ["en", "es"]
    assert len(brief.platforms) == 4 and len(brief.scenes) >= 3
    assert brief.base_uri == str(EXAMPLE.parent)
    assert all((EXAMPLE.parent / ref.uri).is_file() for ref in brief.references)
    assert set(brief.platform_specs()) == set(brief.platforms)


def test_json_and_yaml_give_the_same_brief(tmp_path):
    as_json = tmp_path / "brief.json"
    as_json.write_text(json.dumps(example_data()))
    assert load_brief(as_json).content_hash() == load_brief(EXAMPLE).content_hash()


def test_every_mistake_is_reported_at_once_with_its_path():
    data = example_data()
    data["campaign_id"] = "Not An Id"
    data["languages"] = ["en", "es", "english"]
    data["platforms"].append("myspace")
    data["references"].append(dict(data["references"][0]))  # duplicate id
    data["references"][2]["role"] = "voice"  # a video cannot be a voice
    data["scenes"][0]["duration_s"] = 90
    data["scenes"][1]["dialogue"][0]["text"].pop("es")
    data["scenes"][1]["references"].append("ghost")
    data["scenes"][2]["sound_cues"][0]["at_s"] = 9.5
    data["scenes"][2]["surprise"] = True
    found = issues_of(data)
    assert "campaign_id" in found and "lowercase" in found["campaign_id"]
    assert "languages[2]" in found and "pt-BR" in found["languages[2]"]
    assert "unknown platform 'myspace'" in found["platforms[4]"]
    assert "duplicate id 'presenter'" in found["references[4].id"]
    assert "accepted: motion, style" in found["references[2].role"]
    assert "less than or equal to 20" in found["scenes[0].duration_s"]
    assert "no text for language(s) es" in found["scenes[1].dialogue[0].text"]
    assert "unknown reference 'ghost'" in found["scenes[1].references[3]"]
    assert "past the scene's end" in found["scenes[2].sound_cues[0].at_s"]
    assert "unknown field" in found["scenes[2].surprise"]
    assert len(found) >= 10


def test_reference_limits_per_generation_request():
    data = example_data()
    images = [{"id": f"img{i}", "kind": "image", "role": "style", "uri": f"i{i}.png"} for i in range(10)]
    clips = [{"id": f"clip{i}", "kind": "audio", "role": "sfx", "uri": f"c{i}.wav"} for i in range(4)]
    data["references"] += images + clips
    data["scenes"][0]["references"] = [r["id"] for r in images + clips]
    with pytest.raises(BriefError) as caught:
        validate_brief(data, "test.yaml")
    messages = [issue.message for issue in caught.value.issues if issue.loc == "scenes[0].references"]
    assert f"10 image references; one generation request accepts at most {MAX_IMAGE_REFERENCES}" in messages
    assert f"4 video/audio references; one generation request accepts at most {MAX_CLIP_REFERENCES}" in messages


def test_total_duration_must_fit_every_platform():
    data = example_data()
    data["platform_overrides"] = {"tiktok": {"max_duration_s": 10}}
    found = issues_of(data)
    assert "12 s; tiktok accepts at most 10 s" in found["platforms[0]"]


def test_platform_overrides_merge_and_validate():
    merged = resolve_platforms({"tiktok": {"max_duration_s": 30}, "kiosk": {"width": 720, "height": 1280}})
    assert merged["tiktok"].max_duration_s == 30 and merged["tiktok"].width == PLATFORMS["tiktok"].width
    assert merged["kiosk"].aspect_label == "9:16"
    data = example_data()
    data["platform_overrides"] = {"square": {"width": 1081}}
    assert "even" in issues_of(data)["platform_overrides.square.width"]


def test_music_must_be_an_audio_music_reference():
    data = example_data()
    data["music"]["reference"] = "presenter"
    assert "music must be an audio reference" in issues_of(data)["music.reference"]


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("campaign_id: x\nbrand: {name: [unclosed\n")
    with pytest.raises(BriefError) as caught:
        load_brief(path)
    assert str(path) in str(caught.value) and "line" in caught.value.issues[0].loc


def test_cli_validate_lists_each_mistake(tmp_path):
    data = example_data()
    data["languages"] = ["en", "fr"]
    data["scenes"][0]["duration_s"] = -1
    data["platforms"] = ["tiktok", "friendster"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = subprocess.run(
        [sys.executable, "-m", "syncreel.cli", "validate", str(bad)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr
    assert str(bad) in err
    assert "scenes[0].duration_s" in err
    assert "platforms[1]" in err and "friendster" in err
    assert "scenes[1].dialogue[0].text" in err and "fr" in err
    ok = subprocess.run(
        [sys.executable, "-m", "syncreel.cli", "validate", str(EXAMPLE)], capture_output=True, text=True, cwd=ROOT
    )
    assert ok.returncode == 0 and "lumen-fizz-launch" in ok.stdout
