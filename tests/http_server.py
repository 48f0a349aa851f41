"""A local HTTP server for source tests: scripted answers per path, requests recorded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ScriptedServer:
    """Each path answers its scripted list in order; the last answer then repeats."""

    base_url: str = ""
    routes: dict[str, list[Answer]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, User-Agent)

    def route(self, path: str, *answers: Answer) -> str:
        self.routes[path] = list(answers)
        return self.base_url + path

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def answer(self, path: str) -> Answer:
        answers = self.routes.get(path)
        if not answers:
            return Answer(404, b"not found")
        return answers.pop(0) if len(answers) > 1 else answers[0]


@contextmanager
def scripted_server() -> Iterator[ScriptedServer]:
    script = ScriptedServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            script.requests.append((self.path, self.headers.get("User-Agent", "")))
            answer = script.answer(self.path)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if not {"Content-Length", "Transfer-Encoding"} & set(answer.headers):
                self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    script.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
