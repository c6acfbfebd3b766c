"""Reference ingestion: sources (confined paths, https from a local TLS server), the bad-reference
corpus, content-addressed dedupe and what the database keeps."""

from __future__ import annotations

import ipaddress
import shutil
import struct
import time
import zlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from syncreel.media.errors import MediaError
from syncreel.media.fetch import FetchPolicy, address_refusal, fetch_https
from syncreel.store.models import Asset, ReferenceAsset
from syncreel.tasks.ingest import ReferenceRejected, _ingest, confined_path, locate_source
from tests.fixtures.ingest import BODY, Handler, reference, store_is_empty
from tests.fixtures.synth import synth_media

LOCAL = FetchPolicy(allowed_networks=("127.0.0.1/32",), timeout_s=5)


def test_https_download_from_an_allowed_network(trusted: str, tmp_path: Path) -> None:
    out = fetch_https(f"{trusted}/file.bin", tmp_path / "file.bin", LOCAL)
    assert out.read_bytes() == BODY
    follows = fetch_https(f"{trusted}/to/file.bin", tmp_path / "again.bin", LOCAL)  # a redirect, re-checked
    assert follows.read_bytes() == BODY


def test_loopback_refused_without_allowance(trusted: str, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"127\.0\.0\.1 is a loopback address.*SYNCREEL_REFERENCE_PRIVATE_NETWORKS"):
        fetch_https(f"{trusted}/file.bin", tmp_path / "x.bin", FetchPolicy(timeout_s=5))
    assert not list(tmp_path.iterdir())


def test_redirect_to_link_local_metadata_address_refused(trusted: str, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"redirected to https://169\.254\.169\.254/.*link-local"):
        fetch_https(f"{trusted}/to-metadata", tmp_path / "x.bin", LOCAL)


@pytest.mark.parametrize("path", ["/file.bin", "/unsized"])
def test_oversized_download_refused_and_removed(trusted: str, tmp_path: Path, path: str) -> None:
    policy = FetchPolicy(allowed_networks=LOCAL.allowed_networks, max_bytes=4096, timeout_s=5)
    with pytest.raises(MediaError, match=r"(is|passed) [0-9,]+ bytes; accepted: at most 4,096 bytes"):
        fetch_https(f"{trusted}{path}", tmp_path / "big.bin", policy)
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_stalled_download_stops_at_the_deadline(trusted: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(MediaError, match=r"longer than 1 s|stopped sending"):
        fetch_https(
            f"{trusted}/slow", tmp_path / "slow.bin", FetchPolicy(allowed_networks=("127.0.0.1/32",), timeout_s=1)
        )
    assert time.monotonic() - started < 3
    assert not list(tmp_path.iterdir())


def test_untrusted_certificate_and_plain_http_refused(https_server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = https_server  # SSL_CERT_FILE not set: the self-signed certificate is not trusted
    with pytest.raises(MediaError, match="TLS failed"):
        fetch_https(f"{base}/file.bin", tmp_path / "x.bin", LOCAL)
    with pytest.raises(MediaError, match=r"scheme 'http' refused; accepted: https://"):
        fetch_https("http://example.com/a.png", tmp_path / "x.bin", LOCAL)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.1.2.3", "private"),
        ("192.168.0.7", "private"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("100.64.0.1", "non-public"),
    ],
)
def test_non_public_addresses_are_refused(address: str, kind: str) -> None:
    refusal = address_refusal(ipaddress.ip_address(address), ())
    assert refusal is not None and f"a {kind} address" in refusal
    assert address_refusal(ipaddress.ip_address("93.184.215.14"), ()) is None
    assert address_refusal(ipaddress.ip_address("10.1.2.3"), ("10.0.0.0/8",)) is None


# --- local paths: confined to the brief's folder or an allowed root ---------------------------------


def test_paths_are_confined_to_the_brief_folder(tmp_path: Path) -> None:
    brief_dir, outside = tmp_path / "brief", tmp_path / "elsewhere"
    (brief_dir / "assets").mkdir(parents=True)
    outside.mkdir()
    (brief_dir / "assets" / "ok.png").write_bytes(b"x")
    (outside / "secret.png").write_bytes(b"x")
    (brief_dir / "assets" / "link.png").symlink_to(outside / "secret.png")

    assert confined_path(reference("assets/ok.png"), str(brief_dir)) == (brief_dir / "assets" / "ok.png").resolve()
    assert confined_path(reference(f"file://{brief_dir}/assets/ok.png"), str(brief_dir)).name == "ok.png"
    with pytest.raises(ReferenceRejected, match=r"reference 'hero' \(\.\./elsewhere/secret\.png\): '\.\.' is refused"):
        confined_path(reference("../elsewhere/secret.png"), str(brief_dir))
    with pytest.raises(ReferenceRejected, match=r"'hero' \(assets/link\.png\).*outside.*through a symlink"):
        confined_path(reference("assets/link.png"), str(brief_dir))
    with pytest.raises(ReferenceRejected, match=r"secret\.png is outside the folders.*SYNCREEL_REFERENCE_ROOTS"):
        confined_path(reference(str(outside / "secret.png")), str(brief_dir))
    # An allowed root admits both the file and a link into it.
    assert confined_path(reference("assets/link.png"), str(brief_dir), (outside,)) == (outside / "secret.png").resolve()
    with pytest.raises(ReferenceRejected, match=r"'hero' \(assets/missing\.png\): no such file"):
        confined_path(reference("assets/missing.png"), str(brief_dir))
    with pytest.raises(ReferenceRejected, match=r"unsupported URI scheme 'ftp'; accepted: a path, file://, s3://"):
        locate_source(reference("ftp://host/a.png"), str(brief_dir), tmp_path)


# --- the whole ingest: bad corpus, dedupe, database ------------------------------------------------


def _png(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


def test_bad_reference_corpus_is_rejected_with_specific_messages(runtime, embedded_state: Path, trusted: str) -> None:
    folder = embedded_state / "brief"
    folder.mkdir()
    clip = synth_media(folder / "good.mp4", duration_s=1.0, size=(160, 90), fps=12)
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    (folder / "notes.png").write_text("<html>this is a web page, not a picture</html>\n" * 10)
    _png(folder / "bomb.png", 20_000, 20_000)
    (folder / "empty.wav").write_bytes(b"")
    silent = synth_media(folder / "silent.wav", duration_s=1.0, sound="silence", channels=1)
    outside = embedded_state / "outside.png"
    synth_media(outside, size=(32, 32))
    (folder / "escape.png").symlink_to(outside)
    Handler.files["/huge.png"] = b"\x89PNG" + b"\x00" * 400_000

    corpus = [
        (reference("truncated.mp4", "video", "motion", "moves"), r"'moves' \(truncated\.mp4\)"),
        (reference("notes.png", ref_id="logo"), r"'logo' \(notes\.png\): is a text file, not an image file$"),
        (
            reference("bomb.png", ref_id="bomb"),
            r"'bomb' \(bomb\.png\): image is 20000×20000 = 400 MP; accepted: at most",
        ),
        (reference("empty.wav", "audio", "voice", "vo"), r"'vo' \(empty\.wav\): empty file \(0 bytes\)"),
        (reference(silent.name, "audio", "music", "bed"), r"'bed' \(silent\.wav\): no audible signal"),
        (reference("../outside.png", ref_id="up"), r"'up' \(\.\./outside\.png\): '\.\.' is refused"),
        (reference("escape.png", ref_id="link"), r"'link' \(escape\.png\):.*outside.*through a symlink"),
        (
            reference(f"{trusted}/huge.png", ref_id="big"),
            r"'big' \(https://127\.0\.0\.1:\d+/huge\.png\): download is 400,004",
        ),
    ]
    for ref, message in corpus:
        with pytest.raises(ReferenceRejected, match=message) as rejected:
            _ingest(runtime, ref, str(folder))
        assert "web page" not in str(rejected.value)  # a rejection never quotes the file
    assert store_is_empty(runtime)


def test_loopback_url_rejected_without_the_setting(embedded_state: Path, trusted: str) -> None:
    from syncreel.tasks.stage import get_runtime

    rt = get_runtime()
    with pytest.raises(ReferenceRejected, match=r"'remote' \(https://127\.0\.0\.1.*loopback address"):
        _ingest(rt, reference(f"{trusted}/file.bin", ref_id="remote"), str(embedded_state))
    assert store_is_empty(rt)


def test_identical_uploads_dedupe_across_campaigns_and_keep_probe_and_analysis(
    runtime, embedded_state: Path, trusted: str
) -> None:
    first, second = embedded_state / "campaign-a", embedded_state / "campaign-b"
    first.mkdir()
    second.mkdir()
    shutil.copy(Path(__file__).parents[2] / "examples" / "briefs" / "assets" / "music.m4a", first / "bed.m4a")
    shutil.copy(first / "bed.m4a", second / "theme-final.m4a")
    Handler.files["/theme.m4a"] = (first / "bed.m4a").read_bytes()

    a = _ingest(runtime, reference("bed.m4a", "audio", "music", "bed"), str(first))
    b = _ingest(runtime, reference("theme-final.m4a", "audio", "music", "theme"), str(second))
    c = _ingest(runtime, reference(f"{trusted}/theme.m4a", "audio", "music", "remote"), None)
    assert a.sha256 == b.sha256 == c.sha256 and a.uri == b.uri == c.uri
    assert a.source_sha256 == b.source_sha256
    assert a.media_info["audio"]["sample_rate"] == 48_000 and a.media_info["audio"]["codec"] == "flac"
    assert a.source_info["audio"]["codec"] == "aac" and a.source_info["path"] == "bed.m4a"
    assert a.analysis["type"] == "music" and a.analysis["tempo_bpm"] == pytest.approx(120, abs=1)
    with runtime.session() as session:
        rows = session.scalars(select(ReferenceAsset)).all()
        assets = session.scalar(select(func.count()).select_from(Asset))
        assert len(rows) == 1 and assets == 1
        row = rows[0]
        assert row.kind == "audio" and row.role == "music" and row.source_uri == "bed.m4a"
        assert row.source_info["audio"]["codec"] == "aac" and row.analysis["tempo_bpm"] == a.analysis["tempo_bpm"]
    # The same file as a voice is analysed for speech; the canonical asset stays the one file.
    voice = _ingest(runtime, reference("bed.m4a", "audio", "voice", "vo"), str(first))
    assert voice.uri == a.uri and voice.analysis["type"] == "voice"


def test_settings_refuse_a_network_that_is_not_cidr() -> None:
    from pydantic import ValidationError

    from syncreel.schemas.settings import Settings

    assert Settings(reference_private_networks=["10.0.0.0/8"]).reference_private_networks == ("10.0.0.0/8",)
    with pytest.raises(ValidationError, match="'intranet' is not a network in CIDR form"):
        Settings(reference_private_networks=["intranet"])
