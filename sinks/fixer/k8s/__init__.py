"""The Fixer on Kubernetes GitOps repositories: plain manifests, kustomize overlays, Helm values."""
