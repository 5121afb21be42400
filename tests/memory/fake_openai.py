"""A local HTTP server that speaks the parts of the OpenAI API Memory uses, recording every request.

`POST /v1/chat/completions` answers with whatever `reply(request_json)` returns; `POST /v1/embeddings`
answers with deterministic vectors (float or base64, as the client asks). Requests are kept with their
path, headers and JSON body so that tests can check exactly what the real `openai` client sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeOpenAI:
    base_url: str
    requests: list[Recorded] = field(default_factory=list)
    reply: Callable[[dict[str, Any]], str] = lambda body: body["messages"][-1]["content"]
    status: int = 200
    dimension: int = 8


def _vector(text: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vec = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vec / np.linalg.norm(vec)


@contextmanager
def fake_openai_server() -> Iterator[FakeOpenAI]:
    """Start the server on 127.0.0.1 (random port) in a thread; stop it on exit."""
    state = FakeOpenAI(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append(
                Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            if state.status != 200:
                self._send(state.status, {"error": {"message": "boom", "type": "server_error"}})
                return
            if self.path == "/v1/chat/completions":
                content = state.reply(body)
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(state.requests)}",
                        "object": "chat.completion",
                        "created": 1_795_000_000,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )
            elif self.path == "/v1/embeddings":
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                dim = int(body.get("dimensions") or state.dimension)
                data = []
                for i, text in enumerate(inputs):
                    vec = _vector(str(text), dim)
                    emb: Any = (
                        base64.b64encode(vec.astype("<f4").tobytes()).decode()
                        if body.get("encoding_format") == "base64"
                        else vec.tolist()
                    )
                    data.append({"object": "embedding", "index": i, "embedding": emb})
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": body["model"],
                        "usage": {"prompt_tokens": 1, "total_tokens": 1},
                    },
                )
            else:
                self._send(
                    404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
                )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
