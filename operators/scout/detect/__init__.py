"""Scout's detectors: pure, stateful-per-key stream logic from SignalWindows to anomalies.

- `series.SeriesDetector`: one per signal series key (robust baselines, rate significance,
  saturation trend to limit, restarts and deploys as change events).
- `slo.SloEvaluator`: one per SLO instance (multi-window multi-burn-rate alerts).
- `budget`: the SLO arithmetic (matching, bad events, burn, error budget) Scout, the post-mortem
  and the dashboard share.
- Their parts: `baseline`, `persistence` (k-of-n with hysteresis), `saturation`, `changes`,
  `stats`; `events` (what they emit besides `Anomaly`); `config` (`slos:` and `detection:`).
- `scoring`: backtest scoring of incidents against ground-truth labels.
"""
