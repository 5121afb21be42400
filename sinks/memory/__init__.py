"""Memory: post-mortems built from data, indexed in ChromaDB, and the outcomes of past fixes.

Nothing is imported here so that a light consumer (the Brain wanting `SimilarIncident`, the dashboard
reading post-mortems) does not pay for chromadb at import. The modules, one job each:

- `postmortem`: `build_postmortem(...)` -> `PostMortem`, and `incident_digest` (the indexed text)
- `records`: `Remediation`, `SimilarIncident` (inputs), `Impact`, `BudgetSpent`, `PostMortem`
- `impact`: the impact figures (interval, failed requests, conversions lost, error budget)
- `render`: the Markdown sections and the number spelling
- `gather`: a post-mortem's inputs read back from the store
- `numbers`: `improve_prose(markdown, client, model)`, accepted only if every number and id survives
- `embedding`: `HashingEmbedding` (offline default), `OpenAIEmbedding`, `embedding_from_env()`
- `index`: `PostMortemIndex` over ChromaDB (embedded, or `SRE_CHROMA_URL`), `parse_chroma_url`
- `outcomes`: `OutcomeTracker` (preferred / avoided actions per fingerprint), `similar_incidents`
- `memory`: `Memory`, the responder: `learn(...)` writes file, store row and index entry
- `cli`: `sre-space memory search "text"`
"""
