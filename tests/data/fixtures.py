"""Tiny generated fixtures for the data tests: WAVs, tar archives, CSVs and a local HTTP server."""
from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.io.wavfile

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
COMMIT_DIR = "free-spoken-digit-dataset-26eb9aaf76e81b692f806f9140c2d2777410d7a1"


def wav_bytes(rate: int = 8000, n: int = 2000, channels: int = 1, seed: int = 0) -> bytes:
    """A short int16 WAV of a noisy tone."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    a = (3000 * np.sin(2 * np.pi * 440 * t) + 300 * rng.standard_normal(n)).astype(np.int16)
    if channels > 1:
        a = np.stack([a] * channels, 1)
    buf = io.BytesIO()
    scipy.io.wavfile.write(buf, rate, a)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes]) -> bytes:
    """A gzip tar archive holding ``members`` (name -> bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def fsdd_fixture(names: tuple[str, ...] = ("0_george_0.wav", "1_jackson_7.wav", "9_theo_49.wav")
                 ) -> tuple[bytes, dict[str, str]]:
    """An FSDD-like archive (as GitHub's codeload lays it out) and its manifest."""
    files = {n: wav_bytes(seed=i) for i, n in enumerate(names)}
    members = {f"{COMMIT_DIR}/recordings/{n}": b for n, b in files.items()}
    members[f"{COMMIT_DIR}/README.md"] = b"readme"
    return tar_bytes(members), {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}


@contextmanager
def serve(routes: dict[str, bytes], cut: set[str] = frozenset()):
    """Serve ``routes`` (path -> body) on 127.0.0.1 in a thread; paths in ``cut`` announce the full
    Content-Length but send only half the body, then close (an interrupted transfer). Yields the base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            body = routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if self.path in cut else body)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
