"""The YAML editor changes one value as a person would: the rest of the text stays byte for byte."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.fixer.k8s.yamledit import load_all, plain, set_value

DEPLOYMENT = """\
# the ledger's workload
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ledger
  annotations:
    team: "payments"  # owner
spec:
  replicas: 2  # peak load
  template:
    metadata:
      labels:
        app: "ledger"
    spec:
      containers:
        - name: ledger
          image: "registry.example/ledger:1.4.0"
          resources:
            limits:
              memory: "256Mi"
"""
RESTART = ("spec", "template", "metadata", "annotations", "kubectl.kubernetes.io/restartedAt")


def _changed(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(), after.splitlines()
    return [(a, b) for a, b in zip(old, new, strict=False) if a != b]


def test_a_scalar_changes_in_place_with_its_quotes_and_comment() -> None:
    after = set_value(DEPLOYMENT, 0, ("spec", "replicas"), 5)
    assert _changed(DEPLOYMENT, after) == [
        ("  replicas: 2  # peak load", "  replicas: 5  # peak load")
    ]
    limit = ("spec", "template", "spec", "containers", 0, "resources", "limits", "memory")
    after = set_value(DEPLOYMENT, 0, limit, "512Mi")
    assert _changed(DEPLOYMENT, after) == [
        ('              memory: "256Mi"', '              memory: "512Mi"')
    ]


def test_an_inserted_string_takes_the_files_double_quotes() -> None:
    after = set_value(DEPLOYMENT, 0, RESTART, "2026-12-04T21:00:00Z")
    added = [ln for ln in after.splitlines() if ln not in DEPLOYMENT.splitlines()]
    assert added == [
        "      annotations:",
        '        kubectl.kubernetes.io/restartedAt: "2026-12-04T21:00:00Z"',
    ]


def test_an_inserted_string_in_a_single_quoted_file_keeps_single_quotes() -> None:
    text = DEPLOYMENT.replace('"', "'")
    after = set_value(text, 0, RESTART, "2026-12-04T21:00:00Z")
    assert "        kubectl.kubernetes.io/restartedAt: '2026-12-04T21:00:00Z'" in after.splitlines()


@settings(deadline=None)
@given(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=30),
    st.sampled_from([("metadata", "annotations", "team"), RESTART, ("metadata", "labels", "tier")]),
)
def test_any_string_reads_back_as_set_and_only_its_lines_change(
    value: str, path: tuple[str, ...]
) -> None:
    after = set_value(DEPLOYMENT, 0, path, value)
    want = plain(load_all(DEPLOYMENT)[0])
    node = want
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    assert plain(load_all(after)[0]) == want
    assert after.splitlines()[0] == "# the ledger's workload"
