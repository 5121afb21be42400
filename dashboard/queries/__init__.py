"""Pure reads behind the dashboard, one module per page (`overview`, `incidents`, `memory`,
`audit`, `backtests`; the Chaos page's go through `sre_space.harness.chaos_lab`), plus the `store`
handle and the `signals` frames several pages share. The stores, the span archive and the state
folder in, plain data and polars frames out; no `st.*` call lives here, so every figure a page shows
is unit-tested.

The dashboard only reads: a missing database, archive, index or folder is an empty result, never
something to create.
"""
