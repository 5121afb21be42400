"""The real Brain -> narrator -> Fixer pipeline on one labelled fault window, for security tests.

The window is the synthetic shop's `oom` (payment leaks memory after deploying 1.3.0; the Brain
recommends `rollback_version` first). Spans and metrics go out as OTLP/JSON lines and come back
through the shared decoder, so hostile text can be placed anywhere a producer can put it: span and
resource attributes (keys and values), span names, status messages, span events, metric point
attributes, GitOps commit messages. The narrator talks to a local chat-completions server
(`tests.brain.fake_llm`) through the real `openai` client, and the Fixer is built by the
production factory over a real local GitOps repository with the packaged policy.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sinks.brain.engine import Analysis, analyze
from sinks.brain.loading import BRAIN_ATTRIBUTES, load_metrics, load_spans
from sinks.brain.narrate import NarrationConfig, NarrationResult, apply_narrative, narrate
from sinks.fixer.factory import FixerParts, build_fixer
from sinks.fixer.fixer import Remedy
from sinks.store.sqlite import Store
from sre_space.records import Diagnosis, Incident
from sre_space.settings import Settings, load_settings
from sre_space.timeutil import rfc3339_to_ns
from tests.brain import synth
from tests.brain.fake_llm import FakeLLM, Reply
from tests.brain.otlp_writer import metrics_request, spans_request
from tests.fixer.helpers import SCHEMA, git, manifest

FAULT, SEED, TRACES = "oom", 11, 60
CULPRIT = "payment"
SELECTED = (*synth.ATTRS, *BRAIN_ATTRIBUTES)

# Canaries: the credentials in the environment, and a secret a careless service put on its spans.
GITHUB_CANARY = "ghp_C4n4ryGithubT0kenDoNotLeak0123456789"
OPENAI_CANARY = "sk-canary-OpenAIKeyDoNotLeak-0123456789"
ATTR_CANARY = "CANARYsessionSecret7f3a9c2e51d84b06"
CANARIES = (GITHUB_CANARY, OPENAI_CANARY, ATTR_CANARY)

NOW = rfc3339_to_ns("2025-11-24T16:10:00.000Z")  # the end of the incident window (event time)
INCIDENT = Incident(
    id="inc-inj",
    fingerprint="fp-inj",
    state="open",
    opened_at=rfc3339_to_ns("2025-11-24T16:05:00.000Z"),
    updated_at=rfc3339_to_ns("2025-11-24T16:05:00.000Z"),
    services=[CULPRIT],
    severity="critical",
    anomaly_ids=["a-mem", "a-err"],
    summary="payment memory climbing, checkout errors",
)

Docs = dict[str, Any]


@dataclass
class Telemetry:
    """What a producer controls: the trace and metric export requests, and GitOps commits."""

    traces: Docs
    metrics: Docs
    commits: list[dict[str, Any]]


@dataclass
class Run:
    """Everything one pass of the pipeline produced."""

    analysis: Analysis
    diagnosis: Diagnosis  # with the narrative applied when it was accepted
    narration: NarrationResult
    llm_requests: list[dict[str, Any]]
    remedy: Remedy
    parts: FixerParts
    repo: Path


def clean_telemetry() -> Telemetry:
    """The labelled fault window as OTLP/JSON, with a secret on every span (under a secret's name)."""
    shop = synth.generate(FAULT, SEED, traces_per_window=TRACES)
    traces = spans_request(shop.spans)
    for _resource, span in iter_spans(traces):
        span["attributes"] += [
            {"key": "app.session.token", "value": {"stringValue": ATTR_CANARY}},
            {
                "key": "http.request.header.authorization",
                "value": {"stringValue": f"Bearer {ATTR_CANARY}"},
            },
        ]
    return Telemetry(traces, metrics_request(shop.metrics), shop.commits)


def iter_spans(traces: Docs) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(resource, span) for every span of an export request."""
    return [
        (rs["resource"], span)
        for rs in traces["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]


def service_of(resource: dict[str, Any]) -> str:
    """The `service.name` of a resource."""
    return next(
        a["value"]["stringValue"] for a in resource["attributes"] if a["key"] == "service.name"
    )


def in_incident(span: dict[str, Any]) -> bool:
    """True for spans that start inside the incident window."""
    return synth.INCIDENT[0] <= int(span["startTimeUnixNano"]) < synth.INCIDENT[1]


def failing(span: dict[str, Any]) -> bool:
    """True for spans with status ERROR."""
    return span["status"]["code"] in (2, "STATUS_CODE_ERROR")


def gitops_repo(root: Path) -> Path:
    """A GitOps repository: payment at 1.2.9, then the deploy of 1.3.0 that started the fault."""
    repo = root / "gitops"
    (repo / "services").mkdir(parents=True)
    (repo / "schema").mkdir()
    git(repo, "init", "-q", "-b", "main")
    for svc in ("payment", "checkout"):
        text = manifest(svc).replace('"1.4.1"', '"1.2.9"' if svc == CULPRIT else '"2.0.3"')
        (repo / "services" / f"{svc}.yaml").write_text(text, encoding="utf-8")
    (repo / "schema" / "service.schema.json").write_text(json.dumps(SCHEMA, indent=2))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial manifests")
    path = repo / "services" / f"{CULPRIT}.yaml"
    path.write_text(path.read_text().replace('"1.2.9"', '"1.3.0"'), encoding="utf-8")
    git(repo, "commit", "-q", "-am", "payment: deploy version 1.3.0", date="@1764000240 +0000")
    return repo


def canary_settings(state: Path, llm: FakeLLM) -> Settings:
    """Settings with the canary credentials, as the environment of a real deployment gives them."""
    return load_settings(
        state_dir=state,
        OPENAI_API_KEY=OPENAI_CANARY,
        OPENAI_BASE_URL=llm.base_url,
        GITHUB_TOKEN=GITHUB_CANARY,
        github_repo=None,
    )


def samples_for(traces: Docs, trace_id: str, limit: int = 12) -> list[dict[str, Any]]:
    """Everything a producer put on the spans of one trace, as flat attributes for the narrator."""
    out: list[dict[str, Any]] = []
    for resource, span in iter_spans(traces):
        if span["traceId"].lower() != trace_id.lower():
            continue
        sample = {a["key"]: next(iter(a["value"].values())) for a in resource["attributes"]}
        sample.update({a["key"]: next(iter(a["value"].values())) for a in span["attributes"]})
        sample["span.name"] = span["name"]
        if span["status"].get("message"):
            sample["status.message"] = span["status"]["message"]
        for i, event in enumerate(span.get("events") or []):
            for a in event["attributes"]:
                sample[f"event[{i}].{event['name']}.{a['key']}"] = a["value"].get("stringValue")
        out.append(sample)
        if len(out) >= limit:
            break
    return out


def good_reply(analysis: Analysis) -> str:
    """A narrative that is grounded in the diagnosis (the narrator accepts it)."""
    top = analysis.diagnosis.candidates[0]
    tid = top.evidence[0].trace_ids[0] if top.evidence[0].trace_ids else ""
    return json.dumps(
        {
            "summary": f"{top.service} runs out of memory since the deploy.",
            "root_cause": f"{top.service} '{top.operation}' fails in trace {tid}.",
            "mentions": {
                "services": [top.service],
                "operations": [top.operation],
                "trace_ids": [tid] if tid else [],
            },
            "next_steps": [f"{top.action_names[0]} of {top.service}"],
        }
    )


def run_pipeline(
    telemetry: Telemetry,
    root: Path,
    llm: FakeLLM,
    reply: Callable[[Analysis], str] = good_reply,
) -> Run:
    """Decode, diagnose, narrate and remediate one window; `root` holds its files and repository."""
    root.mkdir(parents=True, exist_ok=True)
    recording = root / "window.jsonl"
    lines = [json.dumps(telemetry.traces), json.dumps(telemetry.metrics)]
    recording.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spans = load_spans([recording], attributes=SELECTED)
    analysis = analyze(
        spans,
        synth.INCIDENT,
        synth.BASELINE,
        metrics=load_metrics([recording]),
        commits=telemetry.commits,
        incident_id=INCIDENT.id,
    )
    settings = canary_settings(root / "state", llm)
    top = analysis.diagnosis.candidates[0] if analysis.diagnosis.candidates else None
    trace_id = next((t for ev in (top.evidence if top else []) for t in ev.trace_ids), "")
    trace_id = trace_id or iter_spans(telemetry.traces)[0][1]["traceId"]
    llm.requests.clear()
    llm.replies[:] = [Reply(reply(analysis))]
    narration = narrate(
        analysis.diagnosis,
        NarrationConfig.from_settings(settings),
        known_services=analysis.report.services,
        samples=samples_for(telemetry.traces, trace_id),
        sleep=lambda _s: None,
    )
    diagnosis = apply_narrative(analysis.diagnosis, narration)
    repo = gitops_repo(root)
    store = Store(root / "sre.db")
    parts = build_fixer(settings, store, gitops_dir=repo)
    remedy = parts.fixer.remediate(INCIDENT, diagnosis, NOW)
    return Run(analysis, diagnosis, narration, list(llm.requests), remedy, parts, repo)


def inject(telemetry: Telemetry, place: str, text: str) -> Telemetry:
    """A copy of the telemetry with `text` placed at `place` (see PLACES)."""
    out = Telemetry(
        copy.deepcopy(telemetry.traces),
        copy.deepcopy(telemetry.metrics),
        copy.deepcopy(telemetry.commits),
    )
    PLACES[place](out, text)
    return out


def _attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _set_attr(attributes: list[dict[str, Any]], key: str, value: str) -> None:
    attributes[:] = [a for a in attributes if a["key"] != key] + [_attr(key, value)]


def _span_attr_value(t: Telemetry, text: str) -> None:
    # A selected attribute (kept by the decoder, looked at by the Brain), on every span.
    for _r, span in iter_spans(t.traces):
        _set_attr(span["attributes"], "app.product.id", text)


def _span_attr_failing(t: Telemetry, text: str) -> None:
    # Concentrated where the Brain looks: the culprit's failing spans in the incident window.
    for resource, span in iter_spans(t.traces):
        if service_of(resource) == CULPRIT and failing(span) and in_incident(span):
            _set_attr(span["attributes"], "app.loyalty_level", text)


def _span_attr_unselected(t: Telemetry, text: str) -> None:
    for _r, span in iter_spans(t.traces):
        span["attributes"].append(_attr("app.note", text))


def _span_attr_key(t: Telemetry, text: str) -> None:
    for _r, span in iter_spans(t.traces):
        span["attributes"].append(_attr(text, "1"))


def _exception(t: Telemetry, text: str) -> None:
    for resource, span in iter_spans(t.traces):
        if service_of(resource) == CULPRIT and failing(span) and in_incident(span):
            span.setdefault("events", []).append(
                {
                    "name": "exception",
                    "timeUnixNano": span["endTimeUnixNano"],
                    "attributes": [
                        _attr("exception.type", "PaymentError"),
                        _attr("exception.message", text),
                        _attr("exception.stacktrace", f"PaymentError: {text}\n  at pay()"),
                    ],
                }
            )


def _event_attr(t: Telemetry, text: str) -> None:
    for resource, span in iter_spans(t.traces):
        if service_of(resource) == CULPRIT:
            event = {"name": "log", "timeUnixNano": span["startTimeUnixNano"]}
            span.setdefault("events", []).append({**event, "attributes": [_attr("log", text)]})


def _span_name(t: Telemetry, text: str) -> None:
    # A bystander operation renamed in both windows (the structure stays the same).
    for _r, span in iter_spans(t.traces):
        if span["name"] == "recommendation.list":
            span["name"] = text


def _status_message(t: Telemetry, text: str) -> None:
    for _r, span in iter_spans(t.traces):
        if failing(span):
            span["status"]["message"] = text


def _resource_attr(t: Telemetry, text: str) -> None:
    for rs in t.traces["resourceSpans"]:
        rs["resource"]["attributes"].append(_attr("deployment.environment", text))


def _resource_attr_key(t: Telemetry, text: str) -> None:
    for rs in t.traces["resourceSpans"]:
        rs["resource"]["attributes"].append(_attr(text, "prod"))


def _metric_attr(t: Telemetry, text: str) -> None:
    for rm in t.metrics["resourceMetrics"]:
        for sm in rm["scopeMetrics"]:
            for metric in sm["metrics"]:
                for point in metric["gauge"]["dataPoints"]:
                    point["attributes"].append(_attr("note", text))


def _commit_message(t: Telemetry, text: str) -> None:
    for commit in t.commits:
        if any(f"/{CULPRIT}." in f for f in commit.get("files", [])):
            commit["message"] = text


def _llm_reply(t: Telemetry, text: str) -> None:
    """The telemetry stays clean; the text is the model's reply (see `run_pipeline(reply=...)`)."""


PLACES: dict[str, Callable[[Telemetry, str], None]] = {
    "span.attr.value": _span_attr_value,
    "span.attr.value.failing": _span_attr_failing,
    "span.attr.unselected": _span_attr_unselected,
    "span.attr.key": _span_attr_key,
    "span.event.exception": _exception,
    "span.event.attr": _event_attr,
    "span.name": _span_name,
    "span.status.message": _status_message,
    "resource.attr.value": _resource_attr,
    "resource.attr.key": _resource_attr_key,
    "metric.attr": _metric_attr,
    "commit.message": _commit_message,
    "llm.reply": _llm_reply,
}
