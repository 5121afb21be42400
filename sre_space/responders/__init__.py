"""The responder loop: each incident goes diagnose, remediate, deploy, verify, post-mortem."""
