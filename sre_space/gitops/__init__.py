"""Kubernetes GitOps desired state shared by the shop and the Fixer: config, logical documents, render."""
