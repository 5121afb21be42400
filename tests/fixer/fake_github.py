"""A local HTTP server speaking the slice of GitHub's REST API that the Fixer uses.

State is in memory (a tiny git model: commits with whole-file trees, refs, pull requests, issues,
comments, labels, commit statuses). Every request is recorded with its headers and JSON payload so
tests can assert exactly what PyGithub sent. Failures (5xx, rate limits) can be queued per route.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

PREFIX = "/api/v3"


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    """A queued failure: the next `times` requests matching method+path regex get this answer."""

    method: str
    pattern: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "Server Error"
    times: int = 1
    process: bool = False  # handle the request first, then answer with the failure (lost response)


def _sha(data: str) -> str:
    return hashlib.sha1(data.encode()).hexdigest()


def _blob_sha(text: str) -> str:
    """Git's object id of a blob (what GitHub answers for a file's `sha`)."""
    return _sha(f"blob {len(text.encode())}\0{text}")


class FakeGithub:
    """In-memory GitHub for one repository `owner/name`."""

    def __init__(self, owner: str, name: str, files: dict[str, str], token: str) -> None:
        self.owner, self.name, self.token = owner, name, token
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.commits: dict[str, dict[str, Any]] = {}
        self.refs: dict[str, str] = {}
        self.items: dict[int, dict[str, Any]] = {}  # issues and pulls share numbers, as on GitHub
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        self.automerge: list[str] = []
        self.blobs: dict[str, str] = {}  # blob sha -> text, filled as trees are listed
        self._next_id = 1000
        self._clock = 0
        self.lock = threading.Lock()
        root = self._commit(dict(files), [], "initial manifests")
        self.refs["main"] = root
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.api = self.base + PREFIX
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeGithub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, method: str, pattern: str, status: int, **kw: Any) -> None:
        """Queue a failure for requests matching `method` and the path regex (after the prefix)."""
        self.failures.append(Failure(method, pattern, status, **kw))

    def calls(self, method: str | None = None, pattern: str = "") -> list[Recorded]:
        """Recorded requests filtered by method and a path regex."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and re.search(pattern, r.path)
        ]

    # --- git model ------------------------------------------------------------------------------

    def _commit(self, tree: dict[str, str], parents: list[str], message: str) -> str:
        self._clock += 1
        date = f"2026-11-28T10:{self._clock // 60:02d}:{self._clock % 60:02d}Z"
        sha = _sha(json.dumps([tree, parents, message, date], sort_keys=True))
        self.commits[sha] = {"tree": tree, "parents": parents, "message": message, "date": date}
        return sha

    def push(self, path: str, text: str, message: str) -> str:
        """Commit one file on main (someone else's change)."""
        tree = dict(self.commits[self.refs["main"]]["tree"])
        tree[path] = text
        self.refs["main"] = self._commit(tree, [self.refs["main"]], message)
        return self.refs["main"]

    def file(self, path: str, ref: str = "main") -> str | None:
        sha = self.refs.get(ref, ref)
        commit = self.commits.get(sha)
        return None if commit is None else commit["tree"].get(path)

    def _resolve(self, ref: str) -> str | None:
        if ref in self.refs:
            return self.refs[ref]
        if ref in self.commits:
            return ref
        return None

    def _first_parent_chain(self, sha: str) -> list[str]:
        out = []
        while sha:
            out.append(sha)
            parents = self.commits[sha]["parents"]
            sha = parents[0] if parents else ""
        return out

    def _changed(self, sha: str) -> list[str]:
        c = self.commits[sha]
        before = self.commits[c["parents"][0]]["tree"] if c["parents"] else {}
        after = c["tree"]
        return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))

    # --- JSON shapes ----------------------------------------------------------------------------

    @property
    def repo_url(self) -> str:
        return f"{self.api}/repos/{self.owner}/{self.name}"

    def _commit_json(self, sha: str, files: bool = False) -> dict[str, Any]:
        c = self.commits[sha]
        out: dict[str, Any] = {
            "sha": sha,
            "url": f"{self.repo_url}/commits/{sha}",
            "html_url": f"{self.base}/{self.owner}/{self.name}/commit/{sha}",
            "commit": {
                "message": c["message"],
                "url": f"{self.repo_url}/git/commits/{sha}",
                "author": {"name": "x", "email": "x@x", "date": c["date"]},
                "committer": {"name": "x", "email": "x@x", "date": c["date"]},
            },
            "parents": [{"sha": p, "url": f"{self.repo_url}/commits/{p}"} for p in c["parents"]],
        }
        if files:
            out["files"] = [{"filename": p, "status": "modified"} for p in self._changed(sha)]
        return out

    def _ref_json(self, branch: str) -> dict[str, Any]:
        sha = self.refs[branch]
        return {
            "ref": f"refs/heads/{branch}",
            "url": f"{self.repo_url}/git/refs/heads/{branch}",
            "object": {"sha": sha, "type": "commit", "url": f"{self.repo_url}/git/commits/{sha}"},
        }

    def _content_json(self, path: str, text: str) -> dict[str, Any]:
        blob = _blob_sha(text)
        return {
            "type": "file",
            "encoding": "base64",
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": blob,
            "size": len(text.encode()),
            "content": base64.b64encode(text.encode()).decode(),
            "url": f"{self.repo_url}/contents/{path}",
        }

    def _label_list(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"name": n, "url": f"{self.repo_url}/labels/{n}", "color": "ededed"} for n in names]

    def _item_json(self, n: int) -> dict[str, Any]:
        it = self.items[n]
        out: dict[str, Any] = {
            "id": n + 50000,
            "node_id": f"NODE_{n}",
            "number": n,
            "title": it["title"],
            "body": it["body"],
            "state": it["state"],
            "labels": self._label_list(it["labels"]),
            "url": f"{self.repo_url}/issues/{n}",
            "html_url": f"{self.base}/{self.owner}/{self.name}/issues/{n}",
            "comments_url": f"{self.repo_url}/issues/{n}/comments",
            "user": {"login": "sre-space-bot"},
        }
        if it["kind"] == "pull":
            out["pull_request"] = {"url": f"{self.repo_url}/pulls/{n}"}
        return out

    def _pull_json(self, n: int) -> dict[str, Any]:
        it = self.items[n]
        head_sha = self.refs.get(it["head"], it.get("head_sha", ""))
        return {
            "id": n + 90000,
            "node_id": f"PR_NODE_{n}",
            "number": n,
            "title": it["title"],
            "body": it["body"],
            "state": it["state"],
            "merged": it["merged"],
            "merge_commit_sha": it.get("merge_sha"),
            "labels": self._label_list(it["labels"]),
            "url": f"{self.repo_url}/pulls/{n}",
            "html_url": f"{self.base}/{self.owner}/{self.name}/pull/{n}",
            "issue_url": f"{self.repo_url}/issues/{n}",
            "head": {"ref": it["head"], "sha": head_sha, "label": f"{self.owner}:{it['head']}"},
            "base": {
                "ref": it["base"],
                "sha": self.refs[it["base"]],
                "label": f"{self.owner}:main",
            },
            "user": {"login": "sre-space-bot"},
        }

    # --- routing --------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        q = {k: v[0] for k, v in query.items()}
        if method == "POST" and path == "/api/graphql":
            return self._graphql(body)
        if not path.startswith(PREFIX):
            return 404, {"message": "Not Found"}, {}
        path = path[len(PREFIX) :]
        repo = f"/repos/{self.owner}/{self.name}"
        if path == repo and method == "GET":
            return (
                200,
                {
                    "id": 1,
                    "name": self.name,
                    "full_name": f"{self.owner}/{self.name}",
                    "owner": {"login": self.owner},
                    "url": self.repo_url,
                    "html_url": f"{self.base}/{self.owner}/{self.name}",
                    "default_branch": "main",
                },
                {},
            )
        if not path.startswith(repo + "/"):
            return 404, {"message": "Not Found"}, {}
        rest = path[len(repo) + 1 :]
        for pattern, verb, fn in self._routes():
            m = re.fullmatch(pattern, rest)
            if m and verb == method:
                return fn(q, body, *[unquote(g) for g in m.groups()])
        return 404, {"message": "Not Found"}, {}

    def _routes(self) -> list[tuple[str, str, Any]]:
        return [
            (r"git/ref/heads/(.+)", "GET", self._get_ref),
            (r"git/refs", "POST", self._create_ref),
            (r"contents/(.+)", "GET", self._get_contents),
            (r"contents/(.+)", "PUT", self._put_contents),
            (r"git/trees/(.+)", "GET", self._get_tree),
            (r"git/blobs/([0-9a-f]+)", "GET", self._get_blob),
            (r"git/commits/([0-9a-f]+)", "GET", self._get_git_commit),
            (r"commits", "GET", self._list_commits),
            (r"commits/([0-9a-f]+)", "GET", self._get_commit),
            (r"statuses/([0-9a-f]+)", "POST", self._create_status),
            (r"pulls", "GET", self._list_pulls),
            (r"pulls", "POST", self._create_pull),
            (r"pulls/(\d+)", "GET", lambda q, b, n: (200, self._pull_json(int(n)), {})),
            (r"pulls/(\d+)/files", "GET", self._pull_files),
            (
                r"pulls/(\d+)/reviews",
                "GET",
                lambda q, b, n: (200, self.reviews.get(int(n), []), {}),
            ),
            (r"pulls/(\d+)/merge", "PUT", self._merge),
            (r"issues", "GET", self._list_issues),
            (r"issues", "POST", self._create_issue),
            (r"issues/(\d+)", "GET", lambda q, b, n: (200, self._item_json(int(n)), {})),
            (r"issues/(\d+)", "PATCH", self._edit_issue),
            (
                r"issues/(\d+)/comments",
                "GET",
                lambda q, b, n: (200, self.comments.get(int(n), []), {}),
            ),
            (r"issues/(\d+)/comments", "POST", self._create_comment),
            (r"issues/(\d+)/labels", "POST", self._add_labels),
            (r"issues/(\d+)/labels", "PUT", self._set_labels),
        ]

    def _get_ref(
        self, q: dict[str, str], body: Any, branch: str
    ) -> tuple[int, Any, dict[str, str]]:
        if branch not in self.refs:
            return 404, {"message": "Not Found"}, {}
        return 200, self._ref_json(branch), {}

    def _create_ref(self, q: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        branch = body["ref"].removeprefix("refs/heads/")
        if branch in self.refs:
            return 422, {"message": "Reference already exists"}, {}
        if body["sha"] not in self.commits:
            return 422, {"message": "Object does not exist"}, {}
        self.refs[branch] = body["sha"]
        return 201, self._ref_json(branch), {}

    def _get_contents(
        self, q: dict[str, str], body: Any, path: str
    ) -> tuple[int, Any, dict[str, str]]:
        sha = self._resolve(q.get("ref", "main"))
        text = None if sha is None else self.commits[sha]["tree"].get(path)
        if text is None:
            return 404, {"message": "Not Found"}, {}
        return 200, self._content_json(path, text), {}

    def _put_contents(
        self, q: dict[str, str], body: Any, path: str
    ) -> tuple[int, Any, dict[str, str]]:
        branch = body.get("branch", "main")
        if branch not in self.refs:
            return 404, {"message": "Branch not found"}, {}
        head = self.refs[branch]
        tree = dict(self.commits[head]["tree"])
        if path in tree and body.get("sha") != self._content_json(path, tree[path])["sha"]:
            return 409, {"message": f"{path} does not match {body.get('sha')}"}, {}
        tree[path] = base64.b64decode(body["content"]).decode()
        sha = self._commit(tree, [head], body["message"])
        self.refs[branch] = sha
        return (
            200,
            {"content": self._content_json(path, tree[path]), "commit": self._commit_json(sha)},
            {},
        )

    def _get_tree(self, q: dict[str, str], body: Any, ref: str) -> tuple[int, Any, dict[str, str]]:
        # A commit or branch, always recursive (what the Fixer asks); the blobs only, no subtrees.
        sha = self._resolve(ref)
        if sha is None or q.get("recursive") not in ("1", "true"):
            return 404, {"message": "Not Found"}, {}
        files = self.commits[sha]["tree"]
        entries = []
        for path, text in sorted(files.items()):
            blob = _blob_sha(text)
            self.blobs[blob] = text
            url = f"{self.repo_url}/git/blobs/{blob}"
            entries.append(
                {"path": path, "mode": "100644", "type": "blob", "sha": blob, "url": url}
            )
        tree = _sha(json.dumps(files, sort_keys=True))
        return 200, {"sha": tree, "url": "", "tree": entries, "truncated": False}, {}

    def _get_blob(self, q: dict[str, str], body: Any, sha: str) -> tuple[int, Any, dict[str, str]]:
        if sha not in self.blobs:
            return 404, {"message": "Not Found"}, {}
        content = base64.b64encode(self.blobs[sha].encode()).decode()
        return 200, {"sha": sha, "encoding": "base64", "content": content}, {}

    def _get_git_commit(
        self, q: dict[str, str], body: Any, sha: str
    ) -> tuple[int, Any, dict[str, str]]:
        if sha not in self.commits:
            return 404, {"message": "Not Found"}, {}
        c, person = self.commits[sha], self._commit_json(sha)["commit"]["committer"]
        parents = [{"sha": p, "url": f"{self.repo_url}/git/commits/{p}"} for p in c["parents"]]
        out = {"sha": sha, "message": c["message"], "author": person, "committer": person}
        return 200, {**out, "url": f"{self.repo_url}/git/commits/{sha}", "parents": parents}, {}

    def _list_commits(self, q: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        start = self._resolve(q.get("sha", "main"))
        if start is None:
            return 404, {"message": "Not Found"}, {}
        chain = self._first_parent_chain(start)
        path = q.get("path")
        if path:
            chain = [s for s in chain if path in self._changed(s)]
        return 200, [self._commit_json(s) for s in chain], {}

    def _get_commit(
        self, q: dict[str, str], body: Any, sha: str
    ) -> tuple[int, Any, dict[str, str]]:
        full = self._resolve(sha) or next((s for s in self.commits if s.startswith(sha)), None)
        if full is None:
            return 404, {"message": "Not Found"}, {}
        return 200, self._commit_json(full, files=True), {}

    def _create_status(
        self, q: dict[str, str], body: Any, sha: str
    ) -> tuple[int, Any, dict[str, str]]:
        self.statuses.setdefault(sha, []).append(body)
        return (
            201,
            {"id": len(self.statuses[sha]), "url": f"{self.repo_url}/statuses/{sha}", **body},
            {},
        )

    def _list_pulls(self, q: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        out = []
        for n, it in sorted(self.items.items()):
            if it["kind"] != "pull":
                continue
            if q.get("state", "open") != "all" and it["state"] != q.get("state", "open"):
                continue
            if "head" in q and q["head"] != f"{self.owner}:{it['head']}":
                continue
            if "base" in q and q["base"] != it["base"]:
                continue
            out.append(self._pull_json(n))
        return 200, out, {}

    def _new_number(self) -> int:
        return len(self.items) + 1

    def _create_pull(self, q: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        if body["head"] not in self.refs:
            return 422, {"message": "Validation Failed"}, {}
        n = self._new_number()
        self.items[n] = {
            "kind": "pull",
            "title": body["title"],
            "body": body.get("body", ""),
            "state": "open",
            "labels": [],
            "head": body["head"],
            "base": body["base"],
            "base_sha": self.refs[body["base"]],
            "merged": False,
        }
        return 201, self._pull_json(n), {}

    def _pull_files(self, q: dict[str, str], body: Any, n: str) -> tuple[int, Any, dict[str, str]]:
        it = self.items[int(n)]
        head = self.refs.get(it["head"], it.get("head_sha", ""))
        a, b = self.commits[it["base_sha"]]["tree"], self.commits[head]["tree"]
        files = sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))
        return 200, [{"filename": p, "status": "modified", "sha": _sha(p)} for p in files], {}

    def _merge(self, q: dict[str, str], body: Any, n: str) -> tuple[int, Any, dict[str, str]]:
        it = self.items[int(n)]
        if it["merged"]:
            return 405, {"message": "Pull Request is not mergeable"}, {}
        head = self.refs[it["head"]]
        if body.get("sha") and body["sha"] != head:
            return 409, {"message": "Head branch was modified"}, {}
        main = self.refs[it["base"]]
        base_tree = self.commits[it["base_sha"]]["tree"]
        main_tree, head_tree = self.commits[main]["tree"], self.commits[head]["tree"]
        merged = dict(main_tree)
        for p in base_tree.keys() | head_tree.keys():
            if head_tree.get(p) != base_tree.get(p):
                if main_tree.get(p) != base_tree.get(p) and main_tree.get(p) != head_tree.get(p):
                    return 405, {"message": "Merge conflict"}, {}
                merged[p] = head_tree[p]
        sha = self._commit(merged, [main, head], body.get("commit_title", "merge"))
        self.refs[it["base"]] = sha
        it.update(merged=True, state="closed", merge_sha=sha, head_sha=head)
        return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}, {}

    def _list_issues(self, q: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        want = set(filter(None, q.get("labels", "").split(",")))
        out = []
        for n, it in sorted(self.items.items()):
            if q.get("state", "open") != "all" and it["state"] != q.get("state", "open"):
                continue
            if want - set(it["labels"]):
                continue
            out.append(self._item_json(n))
        return 200, out, {}

    def _create_issue(self, q: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        n = self._new_number()
        self.items[n] = {
            "kind": "issue",
            "title": body["title"],
            "body": body.get("body", ""),
            "state": "open",
            "labels": list(body.get("labels", [])),
        }
        return 201, self._item_json(n), {}

    def _edit_issue(self, q: dict[str, str], body: Any, n: str) -> tuple[int, Any, dict[str, str]]:
        it = self.items[int(n)]
        for key in ("state", "title", "body"):
            if key in body:
                it[key] = body[key]
        return 200, self._item_json(int(n)), {}

    def _create_comment(
        self, q: dict[str, str], body: Any, n: str
    ) -> tuple[int, Any, dict[str, str]]:
        self._next_id += 1
        c = {
            "id": self._next_id,
            "body": body["body"],
            "url": f"{self.repo_url}/issues/comments/{self._next_id}",
            "html_url": f"{self.base}/{self.owner}/{self.name}/issues/{n}#c{self._next_id}",
            "user": {"login": "sre-space-bot"},
        }
        self.comments.setdefault(int(n), []).append(c)
        return 201, c, {}

    def _add_labels(self, q: dict[str, str], body: Any, n: str) -> tuple[int, Any, dict[str, str]]:
        it = self.items[int(n)]
        for name in body:
            if name not in it["labels"]:
                it["labels"].append(name)
        return 200, self._label_list(it["labels"]), {}

    def _set_labels(self, q: dict[str, str], body: Any, n: str) -> tuple[int, Any, dict[str, str]]:
        it = self.items[int(n)]
        it["labels"] = list(body)
        return 200, self._label_list(it["labels"]), {}

    def _graphql(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        if "enablePullRequestAutoMerge" in body.get("query", ""):
            self.automerge.append(body["variables"]["input"]["pullRequestId"])
            return 200, {"data": {"enablePullRequestAutoMerge": {"actor": {"login": "bot"}}}}, {}
        return 200, {"errors": [{"message": "unsupported"}]}, {}

    # --- HTTP -----------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # header and body are separate writes

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean; requests are recorded instead

            def _serve(self) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                rec = Recorded(
                    self.command, url.path, parse_qs(url.query), dict(self.headers.items()), body
                )
                with fake.lock:
                    fake.requests.append(rec)
                    status, payload, headers = self._answer(url.path, rec)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _answer(self, path: str, rec: Recorded) -> tuple[int, Any, dict[str, str]]:
                auth = rec.headers.get("Authorization", "")
                if auth not in (f"token {fake.token}", f"Bearer {fake.token}"):
                    return 401, {"message": "Bad credentials"}, {}
                for f in fake.failures:
                    if f.times > 0 and f.method == rec.method and re.search(f.pattern, path):
                        f.times -= 1
                        if f.process:
                            fake.handle(rec.method, path, rec.query, rec.body)
                        return f.status, {"message": f.message}, f.headers
                return fake.handle(rec.method, path, rec.query, rec.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return Handler
