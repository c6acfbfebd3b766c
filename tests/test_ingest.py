"""Reference ingestion: sources (confined paths, https from a local TLS server), the bad-reference
corpus, content-addressed dedupe and what the database keeps."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import shutil
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from syncreel.media.errors import MediaError
from syncreel.media.fetch import FetchPolicy, address_refusal, fetch_https
from syncreel.media.synth import synth_media
from syncreel.schemas.brief import Reference
from syncreel.schemas.settings import get_settings
from syncreel.store.models import Asset, ReferenceAsset
from syncreel.tasks.ingest import ReferenceRejected, _ingest, confined_path, locate_source

BODY = bytes(range(256)) * 40  # 10 240 bytes


# --- an https server on 127.0.0.1 with a self-signed certificate -------------------------------------


def _certificate(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 10  # a stuck client cannot hold a server thread past the test
    files: dict[str, bytes] = {}
    release = threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:10])
            self.wfile.flush()
            self.release.wait(5)  # until the test ends, at most 5 s
            return
        if self.path in ("/drip", "/drip-headers"):
            self._drip()
            return
        if self.path == "/to-metadata":
            self.send_response(302)
            self.send_header("Location", "https://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        if self.path.startswith("/to/"):
            self.send_response(301)
            self.send_header("Location", self.path.removeprefix("/to"))
            self.end_headers()
            return
        if self.path == "/unsized":  # no Content-Length: the body ends when the connection closes
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BODY)
            self.close_connection = True
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self) -> None:
        """One byte every 0.2 s, of the body (/drip) or of a header line (/drip-headers), each byte well
        within any per-read timeout, until the client hangs up or the test ends."""
        self.send_response(200)
        if self.path == "/drip":
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            trickle = BODY
        else:
            self.flush_headers()
            trickle = b"X-Slow: " + b"a" * 1000
        try:
            for byte in trickle:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                if self.release.wait(0.2):
                    return
        except OSError:
            self.close_connection = True


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, CA file) of an https server on 127.0.0.1, stopped through its handle afterwards."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = _certificate(folder)
    _Handler.files = {"/file.bin": BODY}
    _Handler.release.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        _Handler.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def trusted(https_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> str:
    base, cert = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return base


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


def _ref(uri: str, kind: str = "image", role: str = "character", ref_id: str = "hero") -> Reference:
    return Reference(id=ref_id, kind=kind, role=role, uri=uri)


def test_paths_are_confined_to_the_brief_folder(tmp_path: Path) -> None:
    brief_dir, outside = tmp_path / "brief", tmp_path / "elsewhere"
    (brief_dir / "assets").mkdir(parents=True)
    outside.mkdir()
    (brief_dir / "assets" / "ok.png").write_bytes(b"x")
    (outside / "secret.png").write_bytes(b"x")
    (brief_dir / "assets" / "link.png").symlink_to(outside / "secret.png")

    assert confined_path(_ref("assets/ok.png"), str(brief_dir)) == (brief_dir / "assets" / "ok.png").resolve()
    assert confined_path(_ref(f"file://{brief_dir}/assets/ok.png"), str(brief_dir)).name == "ok.png"
    with pytest.raises(ReferenceRejected, match=r"reference 'hero' \(\.\./elsewhere/secret\.png\): '\.\.' is refused"):
        confined_path(_ref("../elsewhere/secret.png"), str(brief_dir))
    with pytest.raises(ReferenceRejected, match=r"'hero' \(assets/link\.png\).*outside.*through a symlink"):
        confined_path(_ref("assets/link.png"), str(brief_dir))
    with pytest.raises(ReferenceRejected, match=r"secret\.png is outside the folders.*SYNCREEL_REFERENCE_ROOTS"):
        confined_path(_ref(str(outside / "secret.png")), str(brief_dir))
    # An allowed root admits both the file and a link into it.
    assert confined_path(_ref("assets/link.png"), str(brief_dir), (outside,)) == (outside / "secret.png").resolve()
    with pytest.raises(ReferenceRejected, match=r"'hero' \(assets/missing\.png\): no such file"):
        confined_path(_ref("assets/missing.png"), str(brief_dir))
    with pytest.raises(ReferenceRejected, match=r"unsupported URI scheme 'ftp'; accepted: a path, file://, s3://"):
        locate_source(_ref("ftp://host/a.png"), str(brief_dir), tmp_path)


# --- the whole ingest: bad corpus, dedupe, database ------------------------------------------------


def _png(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def runtime(embedded_state: Path, monkeypatch: pytest.MonkeyPatch):
    from syncreel.tasks.stage import get_runtime

    monkeypatch.setenv("SYNCREEL_REFERENCE_PRIVATE_NETWORKS", '["127.0.0.1/32"]')
    monkeypatch.setenv("SYNCREEL_REFERENCE_MAX_DOWNLOAD_BYTES", "300000")
    get_settings.cache_clear()
    return get_runtime()


def _store_is_empty(rt) -> bool:
    """No asset row, no reference_assets row and no file in the store: nothing of a refused reference kept."""
    root = Path(rt.settings.storage_url.removeprefix("file://"))
    with rt.session() as session:
        assets = session.scalar(select(func.count()).select_from(Asset))
        references = session.scalar(select(func.count()).select_from(ReferenceAsset))
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return assets == 0 and references == 0 and not files


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
    _Handler.files["/huge.png"] = b"\x89PNG" + b"\x00" * 400_000

    corpus = [
        (_ref("truncated.mp4", "video", "motion", "moves"), r"'moves' \(truncated\.mp4\)"),
        (_ref("notes.png", ref_id="logo"), r"'logo' \(notes\.png\): is a text file, not an image file$"),
        (_ref("bomb.png", ref_id="bomb"), r"'bomb' \(bomb\.png\): image is 20000×20000 = 400 MP; accepted: at most"),
        (_ref("empty.wav", "audio", "voice", "vo"), r"'vo' \(empty\.wav\): empty file \(0 bytes\)"),
        (_ref(silent.name, "audio", "music", "bed"), r"'bed' \(silent\.wav\): no audible signal"),
        (_ref("../outside.png", ref_id="up"), r"'up' \(\.\./outside\.png\): '\.\.' is refused"),
        (_ref("escape.png", ref_id="link"), r"'link' \(escape\.png\):.*outside.*through a symlink"),
        (
            _ref(f"{trusted}/huge.png", ref_id="big"),
            r"'big' \(https://127\.0\.0\.1:\d+/huge\.png\): download is 400,004",
        ),
    ]
    for ref, message in corpus:
        with pytest.raises(ReferenceRejected, match=message) as rejected:
            _ingest(runtime, ref, str(folder))
        assert "web page" not in str(rejected.value)  # a rejection never quotes the file
    assert _store_is_empty(runtime)


def test_loopback_url_rejected_without_the_setting(embedded_state: Path, trusted: str) -> None:
    from syncreel.tasks.stage import get_runtime

    rt = get_runtime()
    with pytest.raises(ReferenceRejected, match=r"'remote' \(https://127\.0\.0\.1.*loopback address"):
        _ingest(rt, _ref(f"{trusted}/file.bin", ref_id="remote"), str(embedded_state))
    assert _store_is_empty(rt)


def test_identical_uploads_dedupe_across_campaigns_and_keep_probe_and_analysis(
    runtime, embedded_state: Path, trusted: str
) -> None:
    first, second = embedded_state / "campaign-a", embedded_state / "campaign-b"
    first.mkdir()
    second.mkdir()
    shutil.copy(Path(__file__).parents[1] / "examples" / "briefs" / "assets" / "music.m4a", first / "bed.m4a")
    shutil.copy(first / "bed.m4a", second / "theme-final.m4a")
    _Handler.files["/theme.m4a"] = (first / "bed.m4a").read_bytes()

    a = _ingest(runtime, _ref("bed.m4a", "audio", "music", "bed"), str(first))
    b = _ingest(runtime, _ref("theme-final.m4a", "audio", "music", "theme"), str(second))
    c = _ingest(runtime, _ref(f"{trusted}/theme.m4a", "audio", "music", "remote"), None)
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
    voice = _ingest(runtime, _ref("bed.m4a", "audio", "voice", "vo"), str(first))
    assert voice.uri == a.uri and voice.analysis["type"] == "voice"


def test_settings_refuse_a_network_that_is_not_cidr() -> None:
    from pydantic import ValidationError
    from syncreel.schemas.settings import Settings

    assert Settings(reference_private_networks=["10.0.0.0/8"]).reference_private_networks == ("10.0.0.0/8",)
    with pytest.raises(ValidationError, match="'intranet' is not a network in CIDR form"):
        Settings(reference_private_networks=["intranet"])
