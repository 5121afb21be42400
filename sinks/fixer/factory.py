"""Build the Fixer's parts from Settings: the local git forge and tracker by default, GitHub when
`GITHUB_TOKEN` and `SRE_GITHUB_REPO` are set.

The lead's loop needs one `FixerParts` per process; the responder is built separately because its
step functions come from the Brain, Scout and Memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sinks.fixer.audit import AuditLog
from sinks.fixer.fixer import Fixer, Prefer
from sinks.fixer.forge import Forge
from sinks.fixer.forge_github import GithubForge
from sinks.fixer.forge_local import LocalForge
from sinks.fixer.github_client import DEFAULT_BASE_URL, RetryPolicy, make_github
from sinks.fixer.policy import Policy, load_policy
from sinks.fixer.reconciler import CommandReconciler, Reconciler
from sinks.fixer.rollout import (
    DeployConfig,
    GitOpsReconciler,
    ReconcilerMode,
    Rollout,
    RolloutCheck,
    TelemetryWatch,
)
from sinks.fixer.shop_reconciler import ShopReconciler
from sinks.fixer.tracker import GithubTracker, IncidentTracker, LocalTracker
from sinks.store.sqlite import Store
from sre_space.records import AuditAction
from sre_space.settings import Settings, load_section


@dataclass(frozen=True, slots=True)
class FixerParts:
    """Forge, tracker, policy, audit log and the Fixer built on them."""

    forge: Forge
    tracker: IncidentTracker
    policy: Policy
    audit: AuditLog
    fixer: Fixer


def build_fixer(
    settings: Settings,
    store: Store,
    *,
    policy_path: str | Path | None = None,
    gitops_dir: str | Path | None = None,
    github_base_url: str = DEFAULT_BASE_URL,
    retry: RetryPolicy | None = None,
    prefer: Prefer | None = None,
    emit: Callable[[AuditAction], None] | None = None,
) -> FixerParts:
    """The Fixer's parts for this process (GitHub when configured, the local git forge otherwise).

    `emit` forwards every audit action (e.g. to the `sre.actions` topic); `prefer` lets Memory
    re-rank the Brain's recommendations (a fix that worked first, one that failed dropped).
    """
    policy = load_policy(policy_path)
    # Every configured secret is redacted by value from PR bodies, comments and the audit log,
    # whichever forge is in use (shape-based redaction alone misses an unusual token).
    secrets = [
        s.get_secret_value()
        for s in (settings.github_token, settings.openai_api_key)
        if s is not None and s.get_secret_value()
    ]
    if settings.github_token is not None and settings.github_repo:
        token = settings.github_token
        gh = make_github(token, base_url=github_base_url)
        forge: Forge = GithubForge(gh, settings.github_repo, store, retry=retry, secrets=secrets)
        tracker: IncidentTracker = GithubTracker(
            store, gh, settings.github_repo, retry=retry, secrets=secrets
        )
    else:
        repo = Path(gitops_dir) if gitops_dir else settings.paths.gitops
        forge = LocalForge(repo, store)
        tracker = LocalTracker(store, out_dir=settings.paths.incidents)
    audit = AuditLog(store, emit=emit, secrets=tuple(secrets))

    def incident_url(incident_id: str) -> str:
        ref = tracker.issue(incident_id)
        return ref.url if ref and ref.url.startswith("http") else ""

    fixer = Fixer(
        forge,
        store,
        policy,
        audit=audit,
        prefer=prefer,
        incident_url=incident_url,
        secrets=secrets,
    )
    return FixerParts(forge=forge, tracker=tracker, policy=policy, audit=audit, fixer=fixer)


@dataclass(frozen=True, slots=True)
class Deployer:
    """How merged commits are deployed (`reconciler`) and confirmed running (`watch`, optional)."""

    reconciler: Reconciler
    watch: Callable[[Rollout, int], RolloutCheck] | None
    rollout_deadline_s: float
    mode: str


def build_deployer(
    settings: Settings,
    store: Store,
    *,
    command: Sequence[str] = (),
    mode: ReconcilerMode | None = None,
    timeout_s: float = 30.0,
) -> Deployer:
    """The `deploy:` section's reconciler; a `mode` or `command` given here (the command line)
    wins. Without any, it is `gitops`: the responders wait until the telemetry shows the change.
    """
    cfg = load_section(settings.pipeline.extra, "deploy", DeployConfig)
    chosen = mode or ("command" if command else cfg.reconciler)
    command = tuple(command) or cfg.command
    if chosen == "auto":
        chosen = "command" if command else "gitops"
    watch = TelemetryWatch(store, lookback_s=cfg.lookback).check
    reconciler: Reconciler
    if chosen == "shop":
        reconciler, watch_on = ShopReconciler(settings.state_dir, timeout_s=timeout_s), False
    elif chosen == "command":
        if not command:
            message = (
                "deploy.reconciler is command but no command is set: give deploy.command or"
                " --deploy-command, e.g. 'argocd app sync shop --revision {sha}'"
            )
            raise ValueError(message)
        reconciler = CommandReconciler(command, timeout_s=timeout_s)
        watch_on = cfg.watch_after_command
    else:
        reconciler, watch_on = GitOpsReconciler(), True
    return Deployer(reconciler, watch if watch_on else None, cfg.rollout_deadline, chosen)
