"""A local HTTP server that speaks the OpenAI chat-completions API, for the real `openai` client.

Replies are scripted per test; every request is recorded (headers and JSON body) for checking.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer: HTTP status, the assistant's content (or a raw body), a delay."""

    content: str | None = None
    status: int = 200
    raw: str | None = None
    delay_s: float = 0.0
    total_tokens: int = 500


@dataclass
class FakeLLM:
    replies: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    default: Reply = field(default_factory=lambda: Reply(status=500, raw='{"error": "no reply"}'))

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length).decode("utf-8")
                fake.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "raw": raw,
                        "json": json.loads(raw),
                    }
                )
                reply = fake.replies.pop(0) if fake.replies else fake.default
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.raw is not None:
                    body = reply.raw
                else:
                    body = json.dumps(
                        {
                            "id": f"chatcmpl-{len(fake.requests)}",
                            "object": "chat.completion",
                            "created": 1764000000,
                            "model": fake.requests[-1]["json"].get("model"),
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": reply.content},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {
                                "prompt_tokens": reply.total_tokens - 100,
                                "completion_tokens": 100,
                                "total_tokens": reply.total_tokens,
                            },
                        }
                    )
                data = body.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
