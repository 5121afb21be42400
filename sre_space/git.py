"""Running git: the one wrapper the shop's GitOps repository, the local forge and the Brain's change
evidence drive the `git` command line through."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Reproducible and non-interactive: English messages, no system config, never a prompt or an editor.
# Inherited GIT_* variables are dropped so that a caller's GIT_DIR or identity cannot leak in.
_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true"}


class GitError(RuntimeError):
    """A git command failed or could not run; the message carries the command and git's own words."""


@dataclass(frozen=True)
class Commit:
    """One commit: id, commit time (epoch seconds), subject and the files it changed."""

    sha: str
    time_s: int
    subject: str
    files: tuple[str, ...]


def run(
    repo: str | Path,
    *args: str,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float | None = None,
    git: str = "git",
) -> subprocess.CompletedProcess[str]:
    """`git -C repo args`; with `check`, a non-zero exit raises GitError with git's stderr."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    full_env.update(_ENV)
    full_env.update(env or {})
    try:
        proc = subprocess.run(
            [git, "-C", str(repo), *args],
            input=input_text,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {args[0]} failed to run in {repo}: {exc}") from exc
    if check and proc.returncode != 0:
        raise GitError(
            f"git {' '.join(args)} failed in {repo} (exit {proc.returncode}):"
            f" {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def rev_parse(
    repo: str | Path, ref: str, *, timeout: float | None = None, git: str = "git"
) -> str | None:
    """The commit id `ref` names, or None when there is none."""
    verify = ("rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
    proc = run(repo, *verify, check=False, timeout=timeout, git=git)
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def is_ancestor(repo: str | Path, ancestor: str, descendant: str) -> bool:
    """True when `ancestor` is `descendant` or in its history."""
    return (
        run(repo, "merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0
    )


def log(repo: str | Path, rev: str, *, reverse: bool = False) -> list[Commit]:
    """The commits reachable from `rev` (a ref or a range), newest first unless `reverse`."""
    order = ["--reverse"] if reverse else []
    out = run(repo, "log", *order, "--format=%x1e%H%x1f%ct%x1f%s", "--name-only", rev).stdout
    commits = []
    for chunk in out.split("\x1e")[1:]:
        head, _, rest = chunk.partition("\n")
        sha, ts, subject = head.split("\x1f", 2)
        files = tuple(line for line in rest.splitlines() if line.strip())
        commits.append(Commit(sha, int(ts), subject, files))
    return commits


def files(repo: str | Path, rev: str) -> dict[str, str]:
    """Every file at `rev` by path, read from git objects (not the work tree) in one
    `cat-file --batch`; files that are not UTF-8 text are left out."""
    names = [
        n for n in run(repo, "ls-tree", "-r", "-z", "--name-only", rev).stdout.split("\0") if n
    ]
    request = "".join(f"{rev}:{n}\n" for n in names).encode("utf-8")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | _ENV
    proc = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "--batch"],
        input=request,
        capture_output=True,
        env=full_env,
        check=False,
    )
    if proc.returncode != 0:
        raise GitError(f"git cat-file failed in {repo}: {proc.stderr.decode(errors='replace')}")
    out: dict[str, str] = {}
    raw, pos = proc.stdout, 0
    for name in names:
        header_end = raw.index(b"\n", pos)
        size = int(raw[pos:header_end].split()[2])
        body = raw[header_end + 1 : header_end + 1 + size]
        pos = header_end + 1 + size + 1
        try:
            out[name] = body.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return out
