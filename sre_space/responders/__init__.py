"""The responders on live incidents (`sre-space responders`): the incident application.

- `loop.ResponderLoop`: polls the store, starts and advances one run per incident.
- `machine.Responder`: the persisted state machine (diagnose -> remediate -> deploy -> verify ->
  post-mortem) over injected steps.
- `steps`: those steps on live data (the Brain, the LLM's narrative, Scout's verdict, Memory).
- `lifecycle.LifecycleTracker`: the responders' state moves as incident events (store, Kafka).
"""
