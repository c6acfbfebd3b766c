"""Captions: timings from dialogue (snapped to speech), SRT / WebVTT sidecars, and burned-in text that
hostile dialogue cannot break or inject into, staying inside the platform's safe zone on real frames."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from syncreel.media.captions import (
    WORD_JOINER,
    Cue,
    DialogueTiming,
    ass_text,
    layout_cues,
    plan_cues,
    read_subtitles,
    refine_with_speech,
    safe_zone_box,
    speech_spans,
    wrap,
    write_ass,
    write_srt,
    write_vtt,
)
from syncreel.media.encode import write_master
from syncreel.media.variants import filter_path, render_variants
from syncreel.schemas.platforms import PLATFORMS

HOSTILE = [
    "He said \"hi\" & 'bye': [ok] 100% {\\fs200}big\\N \\ back — <b>tag</b> --> arrow",
    "😀🎉 emoji and مرحبا بالعالم (Arabic, right to left) ;,[]=:%{}",
    "first line\nsecond line\r\nthird",
    "x" * 40 + " " + "word " * 52,  # a 300-character line
]


def test_plan_cues_spreads_untimed_lines_and_never_overlaps() -> None:
    lines = [
        DialogueTiming("Hello there, how are you doing today?", 0.0, 4.0, 0.5),
        DialogueTiming("A very long answer " * 6, 0.0, 4.0, 1.5),
        DialogueTiming("Second scene, untimed.", 4.0, 8.0),
        DialogueTiming("Also untimed.", 4.0, 8.0),
        DialogueTiming("   ", 4.0, 8.0),
    ]
    cues = plan_cues(lines)
    assert [c.start_s for c in cues] == [0.5, 1.5, 4.0, 6.0]
    assert cues[0].end_s == 1.5  # cut at the next line
    assert cues[1].end_s == 4.0  # and at the scene's end
    assert all(a.end_s <= b.start_s for a, b in zip(cues, cues[1:], strict=False))


def test_speech_snaps_cue_edges_only_when_the_sound_is_speech_like() -> None:
    rate = 16_000
    sound = np.zeros(rate * 4, np.float32)
    sound[int(1.2 * rate) : int(2.6 * rate)] = 0.3 * np.sin(np.arange(int(1.4 * rate)) / rate * 2 * np.pi * 200)
    spans = speech_spans(sound, rate)
    assert len(spans) == 1
    assert spans[0] == (pytest.approx(1.2, abs=0.03), pytest.approx(2.6, abs=0.03))
    refined = refine_with_speech([Cue(1.0, 2.3, "hi")], spans, 4.0)
    assert refined[0].start_s == pytest.approx(1.2, abs=0.03) and refined[0].end_s == pytest.approx(2.6, abs=0.03)
    music = [(0.0, 3.9)]  # sound almost throughout: not speech, leave the plan alone
    assert refine_with_speech([Cue(1.0, 2.3, "hi")], music, 4.0) == [Cue(1.0, 2.3, "hi")]


def test_wrap_and_layout_keep_long_lines_within_the_platform_limits() -> None:
    assert wrap("aa bb cc", 5) == ["aa bb", "cc"]
    assert wrap("x" * 12, 5) == ["xxxxx", "xxxxx", "xx"]
    assert wrap("one\ntwo", 20) == ["one", "two"]
    spec = PLATFORMS["tiktok"]
    pages = layout_cues([Cue(0.0, 6.0, HOSTILE[3])], spec)
    assert len(pages) > 2
    assert all(len(p.text.split("\n")) <= spec.caption_max_lines for p in pages)
    assert pages[0].start_s == 0.0 and pages[-1].end_s == 6.0
    assert all(a.end_s == pytest.approx(b.start_s) for a, b in zip(pages, pages[1:], strict=False))


def test_sidecars_are_valid_srt_and_webvtt_and_read_back(tmp_path: Path) -> None:
    cues = [Cue(0.0, 1.5, HOSTILE[0]), Cue(1.5, 3.25, "a\nb"), Cue(3661.5, 3662.0, HOSTILE[1])]
    srt = write_srt(cues, tmp_path / "c.srt").read_text(encoding="utf-8")
    vtt = write_vtt(cues, tmp_path / "c.vtt", "en").read_text(encoding="utf-8")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,500\n")
    assert "01:01:01,500 --> 01:01:02,000" in srt
    assert vtt.startswith("WEBVTT\nLanguage: en\n\n00:00:00.000 --> 00:00:01.500\n")
    assert "&lt;b&gt;tag&lt;/b&gt;" in vtt and "&amp;" in vtt
    assert srt.count("-->") == vtt.count("-->") == 3  # the arrow in the dialogue was replaced
    for path in (tmp_path / "c.srt", tmp_path / "c.vtt"):
        back = read_subtitles(path)
        assert [(c.start_s, c.end_s) for c in back] == [(c.start_s, c.end_s) for c in cues]
        assert back[1].text == "a\nb" and "{\\fs200}" in back[0].text


def test_ass_text_cannot_override_styles_or_break_lines() -> None:
    text = ass_text("{\\fs200}big\\N\nnext")
    assert "{" not in text.replace("\\{", "") and "}" not in text.replace("\\}", "")
    assert text.count("\\N") == 1  # only the real line break; the typed one is neutralised
    assert "\n" not in text


def test_filter_path_escapes_for_the_option_and_graph_parsers() -> None:
    assert filter_path(Path("/tmp/a:b/it's [1],x;y.ass")) == r"/tmp/a\\:b/it\\\'s \[1\]\,x\;y.ass"


@pytest.fixture(scope="module")
def flat_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat grey 16:9 master (so any caption pixel shows), 3 s."""
    frames = np.full((75, 180, 320, 3), 96, np.uint8)
    audio = (0.1 * np.sin(np.arange(48_000 * 3) / 48_000 * 2 * np.pi * 300)).astype(np.float32)[None]
    path = tmp_path_factory.mktemp("flat") / "flat master's [v1].mp4"
    write_master(frames, audio, 25.0, 48_000, path)
    return path


def test_hostile_captions_burn_in_inside_the_safe_zone(flat_master, tmp_path: Path) -> None:
    """Every hostile line renders, and no caption pixel lands outside the safe zone (checked on the
    decoded frames of the deliverable)."""
    specs = {
        name: PLATFORMS[name].model_copy(update={"width": w, "height": h, "fps": 25.0, "burn_captions": True})
        for name, (w, h) in {"tiktok": (270, 480), "instagram_feed": (270, 338), "square": (270, 270)}.items()
    }
    cues = [Cue(0.1 + 0.7 * i, 0.7 * (i + 1), text) for i, text in enumerate(HOSTILE)]
    out = tmp_path / "out: [x], y;z"  # the sendcmd / ass paths inside the filter graph need escaping
    results = render_variants(flat_master, specs, out, cues=cues, language="ar", faces=False)
    for name, result in results.items():
        spec = specs[name]
        x0, y0, x1, y1 = safe_zone_box(spec)
        assert result.files["srt"].is_file() and result.files["vtt"].is_file()
        with av.open(str(result.path)) as container:
            frames = [f.to_ndarray(format="gray").astype(int) for f in container.decode(video=0)]
        shown = 0
        for index in (5, 22, 40, 60):  # during each cue
            frame = frames[index]
            background = np.median(frame)
            text = np.abs(frame - background) > 40
            outside = text.copy()
            outside[y0:y1, x0:x1] = False
            assert outside.sum() == 0, (name, index, np.argwhere(outside)[:5])
            shown += text.sum() > 50
        assert shown == 4, name  # a caption on screen during every cue
    ass = tmp_path / "check.ass"
    write_ass(layout_cues(cues, specs["tiktok"]), specs["tiktok"], ass)
    assert "\\{\\" + WORD_JOINER + "fs200\\}" in ass.read_text(encoding="utf-8")
