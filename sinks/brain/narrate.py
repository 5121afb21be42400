"""LLM narration of a finished diagnosis, through the `openai` client (OpenAI or any compatible endpoint).

The narrative is decoration on a decision already made: it never changes candidates or their actions.
A reply is used only if it is valid JSON matching `NARRATIVE_SCHEMA` and every service, operation and
trace id it mentions is in the evidence; otherwise (and with no key, on errors, timeouts or an exhausted
budget) the deterministic summary stands. Nothing here raises: the outcome is a `NarrationResult`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from string import Template
from typing import Any

from sinks.brain.redact import redact_value
from sre_space.actions import ACTIONS
from sre_space.records import Diagnosis, action_names
from sre_space.timeutil import ns_to_rfc3339

NARRATIVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "root_cause", "mentions", "next_steps"],
    "properties": {
        "summary": {"type": "string", "maxLength": 3000},
        "root_cause": {"type": "string", "maxLength": 1500},
        "mentions": {
            "type": "object",
            "additionalProperties": False,
            "required": ["services", "operations", "trace_ids"],
            "properties": {
                "services": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
                "operations": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
                "trace_ids": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
            },
        },
        "next_steps": {
            "type": "array",
            "items": {"type": "string", "maxLength": 300},
            "maxItems": 5,
        },
    },
}

_HEX32 = re.compile(r"\b[0-9a-fA-F]{32}\b")
# Bounds on the untrusted span-attribute samples quoted in the prompt: a producer that bloats its
# attributes must not spend the incident's LLM budget (or crowd the evidence out of the prompt).
MAX_SAMPLES = 20
MAX_SAMPLE_VALUE_CHARS = 300
# Keywords that OpenAI's strict structured outputs do not accept everywhere; they stay in our own
# validation of the reply but are left out of the schema sent with the request.
_LOCAL_ONLY = ("maxLength", "maxItems")


def response_schema(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The schema sent as `response_format` (NARRATIVE_SCHEMA without local-only keywords)."""
    node = NARRATIVE_SCHEMA if schema is None else schema
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _LOCAL_ONLY:
            continue
        if key == "properties":
            out[key] = {k: response_schema(v) for k, v in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = response_schema(value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class NarrationConfig:
    """Where and how to ask. `api_key` None disables the LLM (the deterministic summary is used)."""

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = 20.0
    max_attempts: int = 3
    backoff_s: float = 0.5
    max_completion_tokens: int = 700
    temperature: float = 0.2

    @classmethod
    def from_settings(cls, settings: Any) -> NarrationConfig:
        """From `sre_space.settings.Settings` (OPENAI_API_KEY, OPENAI_BASE_URL, SRE_OPENAI_MODEL)."""
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return cls(model=settings.openai_model, base_url=settings.openai_base_url, api_key=key)


@dataclass
class NarrationBudget:
    """What one incident may spend on the LLM, across every narration attempt for it."""

    max_calls: int = 3
    max_tokens: int = 12_000
    calls: int = 0
    tokens: int = 0

    def allows(self, estimated_tokens: int) -> bool:
        """True when one more call of about `estimated_tokens` fits."""
        return self.calls < self.max_calls and self.tokens + estimated_tokens <= self.max_tokens


@dataclass(frozen=True, slots=True)
class NarrationResult:
    """The outcome: `status` is ok, disabled, rejected, error or budget_exhausted; `text` is what to
    show (the narrative when ok, else the deterministic summary)."""

    status: str
    text: str
    reason: str = ""
    narrative: dict[str, Any] | None = None
    calls: int = 0
    tokens: int = 0
    attempts: list[str] = field(default_factory=list)

    @property
    def degraded(self) -> str:
        """Why the LLM's narrative was wanted but not used ("" when it was used or is disabled):
        the endpoint failed or timed out after its retries, the reply was refused, or the budget
        is spent. Callers write this to the audit log."""
        if self.status in ("ok", "disabled"):
            return ""
        tries = f" after {len(self.attempts)} attempt(s)" if self.attempts else ""
        return (
            f"LLM narrative {self.status}{tries}: {self.reason}; the deterministic summary stands"
        )


def load_prompt(name: str) -> str:
    """A prompt template from `sinks/brain/prompts/`."""
    return resources.files("sinks.brain.prompts").joinpath(name).read_text(encoding="utf-8")


def evidence_payload(
    diagnosis: Diagnosis, samples: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """The data the narrator may use: the diagnosis (candidates, evidence, actions) and sample
    span attributes, redacted."""
    data = {
        "incident_id": diagnosis.incident_id,
        "window": [ns_to_rfc3339(diagnosis.window_start), ns_to_rfc3339(diagnosis.window_end)],
        "baseline": [
            ns_to_rfc3339(diagnosis.baseline_start),
            ns_to_rfc3339(diagnosis.baseline_end),
        ],
        "abstained": diagnosis.abstained,
        "deterministic_summary": diagnosis.summary,
        "candidates": [c.to_dict() for c in diagnosis.candidates],
        "span_attribute_samples": [_clip(s) for s in list(samples)[:MAX_SAMPLES]],
    }
    redacted: dict[str, Any] = redact_value(data)
    return redacted


def _clip(value: Any) -> Any:
    """`value` with every string cut to MAX_SAMPLE_VALUE_CHARS (keys included)."""
    if isinstance(value, str):
        if len(value) <= MAX_SAMPLE_VALUE_CHARS:
            return value
        return value[: MAX_SAMPLE_VALUE_CHARS - 1] + "…"
    if isinstance(value, dict):
        return {_clip(str(k)): _clip(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clip(v) for v in value]
    return value


def build_messages(payload: dict[str, Any]) -> list[dict[str, str]]:
    """System and user messages; the data is JSON inside a delimited block with an unguessable nonce
    (derived from the data itself, so the data cannot contain the closing marker by chance)."""
    data = json.dumps(payload, indent=1, sort_keys=True, ensure_ascii=True)
    nonce = hashlib.sha256(data.encode()).hexdigest()[:16]
    user = Template(load_prompt("narrate_user.md")).substitute(
        incident_id=str(payload.get("incident_id") or "?"), nonce=nonce, data=data
    )
    return [
        {"role": "system", "content": load_prompt("narrate_system.md")},
        {"role": "user", "content": user},
    ]


def validate_schema(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Problems of `value` against the subset of JSON Schema that NARRATIVE_SCHEMA uses."""
    problems: list[str] = []
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{path}.{key}: missing")
        if schema.get("additionalProperties") is False:
            problems += [f"{path}.{k}: not allowed" for k in value if k not in props]
        for key, sub in props.items():
            if key in value:
                problems += validate_schema(value[key], sub, f"{path}.{key}")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{path}: expected an array"]
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{path}: more than {schema['maxItems']} items")
        for i, item in enumerate(value):
            problems += validate_schema(item, schema.get("items", {}), f"{path}[{i}]")
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string"]
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{path}: longer than {schema['maxLength']}")
    return problems


def check_grounding(
    reply: dict[str, Any], payload: dict[str, Any], known_services: Sequence[str]
) -> list[str]:
    """Problems where the reply names something the evidence does not hold."""
    evidence_text = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    trace_ids = set(_HEX32.findall(evidence_text.lower()))
    allowed_services = {s for s in known_services if s and s in evidence_text}
    allowed_services |= {c.get("service", "") for c in payload.get("candidates", [])}
    recommended = {a for c in payload.get("candidates", []) for a in action_names(c)}
    problems: list[str] = []
    mentions = reply.get("mentions", {})
    for svc in mentions.get("services", []):
        if svc not in allowed_services:
            problems.append(f"unknown service {svc!r}")
    for op in mentions.get("operations", []):
        if op not in evidence_text:
            problems.append(f"unknown operation {op!r}")
    for tid in mentions.get("trace_ids", []):
        if tid.lower() not in trace_ids:
            problems.append(f"unknown trace id {tid!r}")
    text = " ".join(
        [str(reply.get("summary", "")), str(reply.get("root_cause", ""))]
        + [str(s) for s in reply.get("next_steps", [])]
    )
    for tid in _HEX32.findall(text):
        if tid.lower() not in trace_ids:
            problems.append(f"unknown trace id {tid!r} in the text")
    for svc in known_services:
        if (
            svc
            and svc not in allowed_services
            and re.search(rf"(?<![\w-]){re.escape(svc)}(?![\w-])", text)
        ):
            problems.append(f"service {svc!r} is not in the evidence")
    for action in sorted(set(ACTIONS) - recommended):
        if action in text:
            problems.append(f"action {action!r} was not recommended by the analysis")
    problems += [
        f"number {n} is not in the evidence" for n in unmatched_numbers(text, evidence_text)
    ]
    return problems


# A number standing alone (not part of an identifier such as p95, http2 or a hex id).
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")


def unmatched_numbers(text: str, evidence_text: str) -> list[str]:
    """Numbers of `text` that match no number of the evidence at the text's own precision (the
    narrator may round what the analysis measured, never invent a value or convert a unit)."""
    text = _HEX32.sub(" ", text)
    evidence = [float(x) for x in _NUMBER.findall(_HEX32.sub(" ", evidence_text))]
    evidence += [100.0 * x for x in evidence if x <= 1.0]  # shares said as percentages
    out: list[str] = []
    for token in _NUMBER.findall(text):
        places = len(token.split(".", 1)[1]) if "." in token else 0
        value = float(token)
        if not any(abs(round(e, places) - value) < 10 ** (-places) / 2 for e in evidence):
            out.append(token)
    return out


def narrate(
    diagnosis: Diagnosis,
    config: NarrationConfig,
    *,
    known_services: Sequence[str] = (),
    samples: Sequence[dict[str, Any]] = (),
    budget: NarrationBudget | None = None,
    client: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> NarrationResult:
    """Ask the model for a narrative of `diagnosis`; fall back to its deterministic summary.

    `known_services`: every service in the data (a narrative naming one that is not in the evidence is
    rejected). `samples`: span attributes to quote (untrusted; redacted). `budget`: the incident's
    LLM budget, shared by repeated calls for the same incident. Retries timeouts, connection errors,
    429 and 5xx with exponential backoff; never raises.
    """
    fallback = diagnosis.summary
    if not config.api_key:
        return NarrationResult("disabled", fallback, "no API key configured")
    budget = budget or NarrationBudget()
    try:
        import openai

        payload = evidence_payload(diagnosis, samples)
        messages = build_messages(payload)
        if client is None:
            client = openai.OpenAI(
                base_url=config.base_url,
                api_key=config.api_key,
                timeout=config.timeout_s,
                max_retries=0,  # our own retry loop, so the budget sees every call
            )
    except Exception as exc:  # the narrator must never break the diagnosis
        return NarrationResult("error", fallback, f"cannot prepare the request: {exc}")
    estimate = sum(len(m["content"]) for m in messages) // 4 + config.max_completion_tokens
    attempts: list[str] = []
    calls_before, tokens_before = budget.calls, budget.tokens
    for attempt in range(config.max_attempts):
        if not budget.allows(estimate):
            return NarrationResult(
                "budget_exhausted",
                fallback,
                f"LLM budget for the incident is spent ({budget.calls} calls, {budget.tokens} tokens)",
                calls=budget.calls - calls_before,
                tokens=budget.tokens - tokens_before,
                attempts=attempts,
            )
        budget.calls += 1
        try:
            response = client.chat.completions.create(
                model=config.model,
                messages=messages,
                response_format={
                    "type": "json_schema",
                    "json_schema": {
                        "name": "incident_narrative",
                        "strict": True,
                        "schema": response_schema(),
                    },
                },
                max_completion_tokens=config.max_completion_tokens,
                temperature=config.temperature,
            )
        except Exception as exc:
            retryable = isinstance(exc, openai.APITimeoutError | openai.APIConnectionError) or (
                isinstance(exc, openai.APIStatusError)
                and (exc.status_code >= 500 or exc.status_code == 429)
            )
            budget.tokens += estimate  # a failed call may still have cost tokens
            attempts.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            if retryable and attempt + 1 < config.max_attempts:
                sleep(config.backoff_s * (2**attempt))
                continue
            return NarrationResult(
                "error",
                fallback,
                attempts[-1],
                calls=budget.calls - calls_before,
                tokens=budget.tokens - tokens_before,
                attempts=attempts,
            )
        usage = getattr(response, "usage", None)
        budget.tokens += int(getattr(usage, "total_tokens", 0) or estimate)
        result = _judge(response, payload, known_services, fallback)
        return replace(
            result,
            calls=budget.calls - calls_before,
            tokens=budget.tokens - tokens_before,
            attempts=[*attempts, result.status],
        )
    return NarrationResult("error", fallback, "no attempt left", attempts=attempts)


def _judge(
    response: Any, payload: dict[str, Any], known_services: Sequence[str], fallback: str
) -> NarrationResult:
    try:
        content = response.choices[0].message.content or ""
    except (AttributeError, IndexError, TypeError):
        return NarrationResult("rejected", fallback, "reply has no message content")
    try:
        reply = json.loads(content)
    except json.JSONDecodeError as exc:
        return NarrationResult("rejected", fallback, f"reply is not JSON: {exc.msg}")
    problems = validate_schema(reply, NARRATIVE_SCHEMA)
    if not problems:
        problems = check_grounding(reply, payload, known_services)
    if problems:
        return NarrationResult("rejected", fallback, "; ".join(problems[:5]))
    # The model's text is untrusted too: anything shaped like a credential goes before it is shown.
    reply = redact_value(reply)
    text = reply["summary"].strip() + "\n\n" + reply["root_cause"].strip()
    if reply["next_steps"]:
        text += "\n\nNext steps:\n" + "\n".join(f"- {s}" for s in reply["next_steps"])
    return NarrationResult("ok", text, narrative=reply)


def apply_narrative(diagnosis: Diagnosis, result: NarrationResult) -> Diagnosis:
    """The diagnosis with the narrative attached when it was accepted; candidates never change."""
    if result.status != "ok":
        return diagnosis
    return replace(diagnosis, narrative=result.text)
