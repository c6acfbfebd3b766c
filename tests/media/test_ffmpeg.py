"""The one ffmpeg runner: argument lists or ffmpeg-python graphs, failures as MediaError with ffmpeg's words."""

from __future__ import annotations

from pathlib import Path

import ffmpeg
import pytest

from syncreel.media.errors import MediaError
from syncreel.media.ffmpeg import _guard_inputs, ffmpeg_exe, run
from syncreel.media.probe import probe


def test_ffmpeg_exe_is_the_bundled_binary() -> None:
    assert Path(ffmpeg_exe()).is_file()


def test_run_accepts_an_ffmpeg_python_graph(tmp_path: Path) -> None:
    out = tmp_path / "tone.wav"
    graph = (
        ffmpeg.input("sine=frequency=440:sample_rate=16000:duration=0.5", f="lavfi").output(str(out)).overwrite_output()
    )
    run(graph, what="writing a tone", path=out)
    info = probe(out)
    assert info.audio is not None and info.audio.sample_rate == 16_000
    assert info.duration_s == pytest.approx(0.5, abs=0.01)


def test_run_failure_names_the_file_and_quotes_ffmpeg(tmp_path: Path) -> None:
    missing = tmp_path / "missing clip.mp4"
    with pytest.raises(MediaError, match=r"missing clip\.mp4: probing it failed: .*No such file"):
        run(["-i", str(missing), "-f", "null", "-"], what="probing it", path=missing)


def test_every_file_input_gets_the_whitelists_and_generated_ones_do_not(tmp_path: Path) -> None:
    args = ["-f", "lavfi", "-i", "sine=d=1", "-f", "rawvideo", "-s", "2x2", "-i", "raw.rgb", "-i", "clip%d.png"]
    guarded, files = _guard_inputs([*args, "-f", "mp4", "-y", "out.mp4"], tmp_path)
    assert files == ["sine=d=1", "raw.rgb", "clip%d.png"]
    assert guarded[:4] == ["-f", "lavfi", "-i", "sine=d=1"]
    assert guarded[8:10] == ["-i", "raw.rgb"]
    whitelists = guarded[10:14]
    assert whitelists[:2] == ["-protocol_whitelist", "file"] and "hls" not in whitelists[3].split(",")
    assert guarded[14] == "-i" and Path(guarded[15]).parent == tmp_path  # a pattern name goes through an alias
    assert Path(guarded[15]).readlink() == Path("clip%d.png").absolute()
    assert guarded[-4:] == ["-f", "mp4", "-y", "out.mp4"]
