"""A tiny fake OpenAI-compatible ``/v1/chat/completions`` server on 127.0.0.1 for backend tests (http.server in a
thread). It answers ``"echo: <user message>"`` (or ``reply(prompt)``) and records every request it gets."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeChatServer:
    def __init__(self, reply: Callable[[str], str] | None = None, status: int = 200):
        self.reply = reply or (lambda prompt: f"echo: {prompt}")
        self.status = status
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                if self.path != "/v1/chat/completions" or server.status != 200:
                    code = server.status if server.status != 200 else 404
                    payload = json.dumps({"error": {"message": f"no route {self.path}"}}).encode()
                    self.send_response(code)
                else:
                    prompt = body["messages"][-1]["content"]
                    answer = {"id": "x", "object": "chat.completion", "model": body["model"],
                              "choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": server.reply(prompt)}}]}
                    payload = json.dumps(answer).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def prompts(self) -> list[str]:
        return [r["messages"][-1]["content"] for r in self.requests]

    def __enter__(self) -> FakeChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
