"""Fixer: bounded GitOps remediation with policy, forges, the incident tracker and the responder.

One module per job:

- `playbook`: typed, bounded actions (`Playbook.plan(ActionRequest) -> PlanResult`) and the key guard.
- `policy` + `default_policy.yaml`: auto-merge vs approval, cool-down, hourly cap, freeze, dry-run.
- `manifest`, `schema`: manifest parsing/minimal edits and the JSON Schema subset for the checks.
- `forge` (interface, records, the shared open/revert steps), `forge_local` (real git),
  `forge_github` (PyGithub).
- `k8s`: the desired state every forge holds (`desired.RepositoryState`: logical documents, the
  rendered and validated file edit of a change and of its undo), layouts, in-place YAML edits.
- `github_client`: PyGithub construction and per-step retries (5xx, rate limits).
- `pr_body` + `pr_body.md`: pull request bodies, quoting of untrusted text, secret redaction.
- `tracker`: incident issues (local store + Markdown, or GitHub Issues).
- `fixer`: remediate/revert steps (playbook -> policy -> forge), audited.
- `reconciler`: deploy interface and the command hook; `shop_reconciler`: the demo shop's.
- `rollout`: the `deploy:` section, Argo CD / Flux (deploy nothing) and the telemetry watch.
- `responder`: the persisted per-incident state machine.
- `audit`: AuditAction rows in the store's `actions` table.
- `factory`: builds the parts from Settings (local by default, GitHub when configured).
"""
