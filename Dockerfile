# One image for the shop, the dataflow and the dashboard (the command differs per service).
# kustomize renders the shop's GitOps repository (the shop runs what main renders to) and every
# change the Fixer proposes; it is built from its Go module, pinned as in scripts/gitops/tools.
FROM golang:1.26 AS tools
RUN GOTOOLCHAIN=local GOBIN=/out go install sigs.k8s.io/kustomize/kustomize/v5@v5.8.1

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY --from=tools /out/kustomize /usr/local/bin/kustomize
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir .
ENV SRE_STATE_DIR=/state
VOLUME ["/state"]
