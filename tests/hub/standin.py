"""A stand-in for huggingface.co on 127.0.0.1: the endpoints ``hf_hub_download`` uses, as the real hub answers them.

- ``HEAD|GET /{org}/{name}/resolve/{revision}/{file}``: every answer carries ``X-Repo-Commit``. Small files: 200 with
  ``ETag`` (git blob sha1) and ``Content-Length``. LFS files (weights): 302 to ``/cdn/{sha256}`` (an absolute URL,
  which huggingface_hub does not follow on HEAD) with ``X-Linked-Etag`` / ``X-Linked-Size``, as the hub redirects to
  its CDN. Missing file: 404 ``X-Error-Code: EntryNotFound``; missing repo: 401 ``X-Error-Code: RepoNotFound``.
- ``GET /cdn/{sha256}``: the bytes, with ``Range: bytes=N-`` answered 206 + ``Content-Range``.

Legacy ids (``roberta-base``, ``gpt2``) answer with a relative 307 to their organisation's repo, as the hub does.
``drop_once``: file names whose first full GET sends the headers and half the body, then closes the connection.
``lie_about_hash``: file names advertised with a wrong sha256. ``log``: (method, path, Range header) per request.
"""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.hub.builders import COMMIT, LFS_SUFFIXES, git_blob_sha1

RESOLVE = re.compile(r"^/(?P<repo>[^/]+(/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
# legacy repo ids the hub now redirects (relative 307, followed by huggingface_hub even on HEAD)
MOVED = {"roberta-base": "FacebookAI/roberta-base", "gpt2": "openai-community/gpt2"}


class StandInHub:
    def __init__(self):
        self.repos: dict[str, dict[str, bytes]] = {}
        self.drop_once: set[str] = set()
        self.lie_about_hash: set[str] = set()
        self.log: list[tuple[str, str, str | None]] = []
        self._cdn: dict[str, tuple[str, bytes]] = {}
        self._dropped: set[str] = set()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):
                hub._answer(self, body=False)

            def do_GET(self):
                hub._answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def add(self, repo: str, files: dict[str, bytes]) -> None:
        self.repos.setdefault(MOVED.get(repo, repo), {}).update(files)

    def _answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        self.log.append((handler.command, handler.path, handler.headers.get("Range")))
        if handler.path.startswith("/cdn/"):
            return self._cdn_file(handler, handler.path[len("/cdn/") :], body)
        match = RESOLVE.match(handler.path)
        if match is not None and match["repo"] in MOVED:
            moved = handler.path.replace(f"/{match['repo']}/", f"/{MOVED[match['repo']]}/", 1)
            return self._status(handler, 307, {"Location": moved})
        if match is None or match["repo"] not in self.repos:
            return self._status(handler, 401, {"X-Error-Code": "RepoNotFound"})
        files, name = self.repos[match["repo"]], match["file"]
        if name not in files:
            return self._status(handler, 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
        data = files[name]
        if name.endswith(LFS_SUFFIXES):
            sha = hashlib.sha256(data).hexdigest()
            self._cdn[sha] = (name, data)
            advertised = ("0" * 64) if name in self.lie_about_hash else sha
            return self._status(handler, 302, {
                "Location": f"{self.url}/cdn/{sha}", "X-Repo-Commit": COMMIT, "X-Linked-Etag": f'"{advertised}"',
                "X-Linked-Size": str(len(data)), "ETag": f'"{git_blob_sha1(data)}"',
            })  # fmt: skip
        handler.send_response(200)
        for key, value in {"ETag": f'"{git_blob_sha1(data)}"', "X-Repo-Commit": COMMIT,
                           "Content-Length": str(len(data))}.items():  # fmt: skip
            handler.send_header(key, value)
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    def _cdn_file(self, handler: BaseHTTPRequestHandler, sha: str, body: bool) -> None:
        if sha not in self._cdn:
            return self._status(handler, 404, {})
        name, data = self._cdn[sha]
        start = 0
        wanted = handler.headers.get("Range")
        if wanted:
            start = int(re.match(r"bytes=(\d+)-", wanted).group(1))
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Length", str(len(data) - start))
        handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        if not body:
            return
        if name in self.drop_once and name not in self._dropped and start == 0:
            self._dropped.add(name)
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(data[start:])

    @staticmethod
    def _status(handler: BaseHTTPRequestHandler, code: int, headers: dict[str, str]) -> None:
        handler.send_response(code)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
