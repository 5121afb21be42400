# One image for the shop, the dataflow and the dashboard (the command differs per service).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir .
ENV SRE_STATE_DIR=/state
VOLUME ["/state"]
