"""Recordings: OTLP/JSON lines (the Collector file exporter's format) plus ground-truth labels.

`record()` runs a fresh shop (fresh GitOps repository, dates pinned to event time) for a duration,
injects the scenario at the onset, adds background noise (a harmless deploy elsewhere), and writes:

    FILE                 one export request per line: {"resourceSpans": ...} or {"resourceMetrics": ...}
    FILE.labels.json     scenario, seed, culprit, fault class, onset/end, expected remediation, changes
    FILE.gitops.bundle   the manifests repository's history (`git clone FILE.gitops.bundle`)

Gzip output when FILE ends in `.gz` (with a zero mtime so that the bytes are reproducible).
A FILE ending in `.pb` is written in the file exporter's `format: proto` instead: each export
request as a 4-byte big-endian length plus its protobuf bytes (fast to write and to replay).
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import math
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from chaos.rand import Rand
from chaos.scenarios import Injection, bump_version, change_manifest, get, registry
from chaos.shop import DEFAULT_EPOCH_NS, Shop, ShopConfig
from sre_space.gitops.history import CommitServices
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339

HEALTHY = "healthy"
LABELS_SCHEMA = "sre.chaos.labels/v1"
NOISE_SERVICES = ("catalog", "frontend", "shipping", "recommendation", "cart", "inventory")


def is_proto(out: str | Path) -> bool:
    """Recordings named `*.pb` are written as length-prefixed protobuf, the others as JSON lines."""
    return str(out).endswith(".pb")


def labels_path(out: str | Path) -> Path:
    """Where the labels of recording `out` go."""
    return Path(f"{out}.labels.json")


@contextmanager
def open_output(path: Path) -> Iterator[IO[str]]:
    """A text stream to `path`, gzip-compressed (reproducibly) when it ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with (
            open(path, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
            io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as text,
        ):
            yield text
    else:
        with open(path, "w", encoding="utf-8", newline="\n") as text:
            yield text


# A clean recording gets one harmless deploy per started 8 hours (three a day over a week).
NOISE_EVERY_S = 8 * 3600.0


def _noise_deploys(
    seed: int, culprit: str | None, onset_s: float | None, duration_s: float
) -> list[tuple[float, str]]:
    rand = Rand(seed + 104_729)
    services = [s for s in NOISE_SERVICES if s != culprit]
    if onset_s is not None:
        service = str(rand.choice(services))
        # shortly before the fault: the tempting wrong answer for "what changed?"
        return [(max(30.0, onset_s - 60.0 - 420.0 * rand.uniform()), service)]
    slots = max(1, math.ceil(duration_s / NOISE_EVERY_S))
    slot = duration_s / slots
    out = []
    for i in range(slots):
        service = str(rand.choice(services))
        out.append((slot * (i + 0.2 + 0.6 * rand.uniform()), service))
    return out


def record(
    scenario: str,
    seed: int,
    duration_s: float,
    out: str | Path,
    onset_s: float | None = None,
    intensity: float = 1.0,
    service: str | None = None,
    fault_duration_s: float | None = None,
    rate_rps: float = 20.0,
    metric_interval_s: float = 10.0,
    epoch_ns: int = DEFAULT_EPOCH_NS,
    noise: bool = True,
    bundle: bool = True,
) -> dict[str, Any]:
    """Record `scenario` (or "healthy") to `out` and write its labels; returns the labels."""
    out = Path(out)
    healthy = scenario == HEALTHY
    if not healthy:
        get(scenario)  # fail fast on a bad name, before any work
        if onset_s is None:
            onset_s = min(20 * 60.0, duration_s / 3)
        if not 0 <= onset_s < duration_s:
            raise ValueError(f"onset {onset_s}s must fall inside the recording (0..{duration_s}s)")
    else:
        onset_s = None
    config = ShopConfig(rate_rps=rate_rps, metric_interval_s=metric_interval_s, epoch_ns=epoch_ns)
    with tempfile.TemporaryDirectory(prefix="chaos-record-") as tmp:
        shop = Shop(seed=seed, gitops_path=Path(tmp) / "gitops", config=config)
        start_head = shop.head
        injected: list[Injection] = []
        noise_log: list[dict[str, Any]] = []
        culprit = service or (None if healthy else get(scenario).default_service)
        if noise:

            def harmless(s: Shop, svc: str) -> None:
                version = bump_version(s.desired[svc].version)
                sha, _ = change_manifest(s, svc, ("version",), version, f"deploy {svc} {version}")
                noise_log.append(
                    {
                        "kind": "deploy",
                        "service": svc,
                        "version": version,
                        "commit": sha,
                        "at": ns_to_rfc3339(s.now_ns),
                    }
                )

            for at, noise_service in _noise_deploys(seed, culprit, onset_s, duration_s):
                shop.at(
                    epoch_ns + int(at * NS_PER_S), functools.partial(harmless, svc=noise_service)
                )
        end_ns = epoch_ns + int(duration_s * NS_PER_S)
        fault_end_ns = end_ns
        if onset_s is not None:
            shop.at(
                epoch_ns + int(onset_s * NS_PER_S),
                lambda s: injected.append(s.inject(scenario, service, intensity)),
            )
            if fault_duration_s is not None:
                fault_end_ns = min(end_ns, epoch_ns + int((onset_s + fault_duration_s) * NS_PER_S))
                shop.at(fault_end_ns, lambda s: s.clear())
        lines = 0
        if is_proto(out):
            # The Collector file exporter's `format: proto`: 4-byte big-endian length, then bytes.
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "wb") as raw:
                for batch in shop.iter_batches(duration_s):
                    data = batch.proto_bytes()
                    raw.write(struct.pack(">I", len(data)))
                    raw.write(data)
                    lines += 1
        else:
            with open_output(out) as fh:
                for batch in shop.iter_batches(duration_s):
                    fh.write(batch.json_line())
                    fh.write("\n")
                    lines += 1
        commit_services = CommitServices(shop.repo.path)
        changes = [
            {
                "commit": c.sha,
                "time": ns_to_rfc3339(c.time_s * NS_PER_S),
                "subject": c.subject,
                "files": list(c.files),
                # a path does not name the service in a kustomize overlay; the render does
                "services": commit_services.changed(c.sha),
            }
            for c in shop.repo.log(since=start_head)
        ]
        bundle_name = None
        if bundle:
            bundle_file = Path(f"{out}.gitops.bundle")
            shop.repo.bundle(bundle_file)
            bundle_name = bundle_file.name
    labels = _labels(
        scenario,
        seed,
        out,
        injected,
        noise_log,
        changes,
        epoch_ns,
        end_ns,
        fault_end_ns,
        config,
        intensity,
        lines,
        bundle_name,
    )
    labels_path(out).write_text(
        json.dumps(labels, indent=2, sort_keys=False) + "\n", encoding="utf-8"
    )
    return labels


def _labels(
    scenario: str,
    seed: int,
    out: Path,
    injected: list[Injection],
    noise_log: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    start_ns: int,
    end_ns: int,
    fault_end_ns: int,
    config: ShopConfig,
    intensity: float,
    lines: int,
    bundle_name: str | None,
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema": LABELS_SCHEMA,
        "recording": out.name,
        "scenario": scenario,
        "seed": seed,
        "start": ns_to_rfc3339(start_ns),
        "stop": ns_to_rfc3339(end_ns),
        "lines": lines,
        "shop": {
            "rate_rps": config.rate_rps,
            "metric_interval_s": config.metric_interval_s,
            "tick_s": config.tick_s,
        },
        "gitops_bundle": bundle_name,
        "changes": changes,
        "noise": noise_log,
    }
    if not injected:
        base.update(
            fault_class=None,
            culprit=None,
            onset=None,
            end=None,
            intensity=None,
            remediation=None,
            alternatives=[],
            diagnosis=None,
        )
        return base
    inj = injected[0]
    base.update(
        fault_class=inj.fault_class,
        culprit=inj.culprit(),
        onset=ns_to_rfc3339(inj.onset_ns),
        end=ns_to_rfc3339(fault_end_ns),
        intensity=intensity,
        remediation=inj.remediation,
        alternatives=inj.alternatives,
        diagnosis=inj.diagnosis,
    )
    return base


def suite(
    out_dir: str | Path,
    seeds: tuple[int, ...] = (1, 2, 3),
    duration_s: float = 3600.0,
    onset_s: float = 1200.0,
    healthy_hours: int = 3,
    gzip_files: bool = True,
    rate_rps: float = 20.0,
    log: Any = None,
) -> list[Path]:
    """The standard suite: every scenario x seeds, plus fault-free recordings; returns the files.

    Fault-free recordings are `healthy_hours` of them, each as long as the others (an hour by
    default), with their own seeds.
    """
    out = Path(out_dir)
    ext = ".jsonl.gz" if gzip_files else ".jsonl"
    files: list[Path] = []
    jobs = [(name, seed) for name in sorted(registry()) for seed in seeds]
    jobs += [(HEALTHY, 1000 + i) for i in range(healthy_hours)]
    for name, seed in jobs:
        path = out / f"{name}-seed{seed}{ext}"
        record(
            name,
            seed,
            duration_s,
            path,
            onset_s=None if name == HEALTHY else onset_s,
            rate_rps=rate_rps,
        )
        files.append(path)
        if log:
            log(f"wrote {path}")
    return files
