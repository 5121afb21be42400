"""Set one value in a YAML stream as a person would: only that scalar's text changes.

ruamel.yaml's round-trip loader finds the node and its line and column; the scalar's text is then
replaced in place, keeping its quoting, comments and every other byte. A missing key or list item
is inserted as new lines at its siblings' indentation. Every result is parsed again and must equal
the intended data; when it does not, the stream is dumped by ruamel (comments and order kept).
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

PathPart = str | int
NodePath = tuple[PathPart, ...]


class EditError(ValueError):
    """A YAML file cannot be parsed or edited; the message says which and why."""


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    return y


def load_all(text: str, name: str = "<text>") -> list[Any]:
    """The documents of a YAML stream as round-trip nodes; a syntax error is an EditError."""
    try:
        return [d for d in _yaml().load_all(text) if d is not None]
    except YAMLError as exc:
        raise EditError(f"{name} is not valid YAML: {exc}") from None


def plain(node: Any) -> Any:
    """Round-trip nodes as plain dicts, lists and scalars (for comparison and rendering)."""
    return json.loads(json.dumps(node, default=str))


def get(node: Any, path: NodePath) -> Any:
    """The node at a path, or None when any part is missing."""
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                return None
        elif not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _set_plain(data: Any, path: NodePath, value: Any) -> None:
    node = data
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(part, str) and isinstance(node, dict) and part not in node:
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = path[-1]
    if isinstance(last, int) and isinstance(node, list) and last == len(node):
        node.append(value)
    else:
        node[last] = value


def _scalar_text(value: Any, old: str | None) -> str:
    """A scalar's YAML text, in the old token's quote style where it had one."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if old is not None and old.startswith("'"):
        return "'" + text.replace("'", "''") + "'"
    if old is not None and not old.startswith('"'):
        # Plain stays plain only when it reads back as the same string.
        try:
            loaded = _yaml().load(f"k: {text}\n") if text and "#" not in text else None
        except YAMLError:  # e.g. "*x" reads as an alias: it must be quoted
            loaded = None
        if isinstance(loaded, Mapping) and loaded.get("k") == text and isinstance(loaded["k"], str):
            return text
    return json.dumps(text)


def _token_end(line: str, col: int) -> int | None:
    """Where the scalar token starting at `col` ends, or None for a block or flow value."""
    ch = line[col : col + 1]
    if ch == '"':
        i = col + 1
        while i < len(line):
            if line[i] == "\\":
                i += 2
                continue
            if line[i] == '"':
                return i + 1
            i += 1
        return None
    if ch == "'":
        i = col + 1
        while i < len(line):
            if line[i] == "'":
                if line[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                return i + 1
            i += 1
        return None
    if not ch or ch in "|>{[&*!":
        return None
    m = re.search(r"\s+#", line[col:])
    end = col + m.start() if m else len(line.rstrip("\r\n"))
    return len(line[:end].rstrip())


def _position(parent: Any, last: PathPart) -> tuple[int, int] | None:
    try:
        if isinstance(parent, CommentedMap):
            line, col = parent.lc.value(last)
        elif isinstance(parent, CommentedSeq):
            line, col = parent.lc.item(last)
        else:
            return None
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return int(line), int(col)


def _replace_scalar(lines: list[str], pos: tuple[int, int], value: Any) -> bool:
    line_no, col = pos
    line = lines[line_no]
    end = _token_end(line, col)
    if end is None:
        return False
    old = line[col:end]
    lines[line_no] = line[:col] + _scalar_text(value, old) + line[end:]
    return True


def _block(value: Any, indent: int, offset: int = 2) -> list[str]:
    """A value as block-style YAML lines at an indentation (for inserted keys and items)."""
    y = _yaml()
    y.indent(mapping=2, sequence=2 + offset, offset=offset)
    buf = io.StringIO()
    y.dump(value, buf)
    return [" " * indent + ln + "\n" for ln in buf.getvalue().splitlines()]


def _last_line(lines: list[str], start: int, indent: int) -> int:
    """The line after the block that starts at `start` and is indented deeper than `indent`."""
    i = start + 1
    end = i
    while i < len(lines):
        stripped = lines[i].strip()
        lead = len(lines[i]) - len(lines[i].lstrip())
        if stripped and not stripped.startswith("#") and lead <= indent:
            break
        if stripped and not stripped.startswith("#"):
            end = i + 1
        i += 1
    return end


def _house_quotes(value: Any, lines: list[str]) -> Any:
    """New strings that need quotes take double quotes where the file quotes that way most
    (ruamel would single-quote them, e.g. a timestamp, which reads as foreign in the diff)."""
    double = sum(len(re.findall(r'[:-] "', ln)) for ln in lines)
    single = sum(len(re.findall(r"[:-] '", ln)) for ln in lines)
    if double <= single:
        return value
    if isinstance(value, Mapping):
        return {k: _house_quotes(v, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_house_quotes(v, lines) for v in value]
    if isinstance(value, str) and _scalar_text(value, "") != value:
        return DoubleQuotedScalarString(value)
    return value


def _insert(lines: list[str], parent: Any, key: PathPart, value: Any) -> bool:
    """Insert a missing key (or a list item at the end) under a non-empty block parent."""
    value = _house_quotes(value, lines)
    if isinstance(parent, CommentedMap) and isinstance(key, str) and len(parent):
        first = next(iter(parent))
        line_no, col = parent.lc.key(first)
        if lines[line_no][col - 1 : col] in ("{", ","):
            return False
        # After the first key's whole value, at its column: also right for a key on a "- " line.
        at = _last_line(lines, line_no, col)
        lines[at:at] = _block({key: value}, col)
        return True
    if isinstance(parent, CommentedSeq) and key == len(parent) and len(parent):
        line_no, col = parent.lc.item(len(parent) - 1)
        dash = lines[line_no].rfind("-", 0, col)
        if dash < 0 or lines[line_no][:dash].strip():
            return False
        at = _last_line(lines, line_no, dash)
        block = _block([value], 0, offset=0)
        lines[at:at] = [" " * dash + ln for ln in block]
        return True
    return False


def _fill_empty(lines: list[str], parent: Any, key: PathPart, value: Any) -> bool:
    """Replace an empty flow mapping (`key: {}`) with a block holding the new value."""
    if not isinstance(parent, CommentedMap) or not isinstance(key, str):
        return False
    pos = _position(parent, key)
    if pos is None or len(parent[key]):
        return False
    line_no, col = pos
    line = lines[line_no]
    if not line[col:].startswith("{}"):
        return False
    key_col = parent.lc.key(key)[1]
    rest = line[col + 2 :]
    lines[line_no] = line[:col].rstrip() + (" " + rest.strip() if rest.strip() else "") + "\n"
    lines[line_no + 1 : line_no + 1] = _block(_house_quotes(value, lines), key_col + 2)
    return True


def set_value(text: str, doc_index: int, path: NodePath, value: Any, name: str = "<text>") -> str:
    """The stream's text with the value at `path` of document `doc_index` set; missing mapping
    keys are created and an index equal to a list's length appends."""
    docs = load_all(text, name)
    if not 0 <= doc_index < len(docs):
        raise EditError(f"{name} has no document {doc_index}")
    want = [plain(d) for d in docs]
    _set_plain(want[doc_index], path, copy.deepcopy(value))
    lines = text.splitlines(keepends=True)
    # Walk down as far as the path exists: `depth` parts exist, `node` is the deepest of them.
    node: Any = docs[doc_index]
    depth = 0
    while depth < len(path) and get(node, (path[depth],)) is not None:
        node = get(node, (path[depth],))
        depth += 1
    done = False
    if depth == len(path):
        parent = get(docs[doc_index], path[:-1])
        pos = _position(parent, path[-1])
        done = (
            pos is not None
            and not isinstance(node, Mapping | list)
            and (_replace_scalar(lines, pos, value))
        )
    else:
        missing: Any = copy.deepcopy(value)
        for part in reversed(path[depth + 1 :]):
            missing = [missing] if isinstance(part, int) else {part: missing}
        done = _insert(lines, node, path[depth], missing) or (
            depth > 0
            and _fill_empty(
                lines,
                get(docs[doc_index], path[: depth - 1]),
                path[depth - 1],
                {path[depth]: missing},
            )
        )
    if done:
        out = "".join(lines)
        try:
            if [plain(d) for d in load_all(out, name)] == want:
                return out
        except EditError:
            pass
    return _dump_all(docs, doc_index, path, value, want, name)


def _dump_all(
    docs: list[Any], doc_index: int, path: NodePath, value: Any, want: list[Any], name: str
) -> str:
    """Fallback: set the value in the round-trip tree and dump the whole stream."""
    node = docs[doc_index]
    for i, part in enumerate(path[:-1]):
        if get(node, (part,)) is None:
            node[part] = CommentedSeq() if isinstance(path[i + 1], int) else CommentedMap()
        node = node[part]
    last = path[-1]
    if isinstance(last, int) and isinstance(node, list) and last == len(node):
        node.append(value)
    else:
        node[last] = value
    buf = io.StringIO()
    y = _yaml()
    y.indent(mapping=2, sequence=4, offset=2)
    y.explicit_start = len(docs) > 1
    y.dump_all(docs, buf)
    out = buf.getvalue()
    if [plain(d) for d in load_all(out, name)] != want:
        raise EditError(f"cannot set {'.'.join(map(str, path))} in {name}")
    return out


def find_index(items: Sequence[Any] | None, field: str, value: str) -> int | None:
    """The index of the first mapping in a list whose `field` equals `value`."""
    for i, item in enumerate(items or ()):
        if isinstance(item, Mapping) and item.get(field) == value:
            return i
    return None
