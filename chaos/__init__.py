"""chaos: the simulated shop that emits real OTLP, its fault scenarios, and labelled recordings.

In-process use (the demo):

    from chaos import Shop
    shop = Shop(seed=1, gitops_path="state/gitops")
    traces, metrics = shop.step(10)   # ExportTraceServiceRequest / ExportMetricsServiceRequest lists
    shop.inject("oom")
"""

from pathlib import Path

from chaos.shop import Batch, Shop, ShopConfig

# The shop's site file (its journeys, objectives and span attributes), merged over the product's
# defaults wherever the shop runs: `sre-space replay REC --config chaos/site.yaml`.
SITE_CONFIG = Path(__file__).with_name("site.yaml")

__all__ = ["SITE_CONFIG", "Batch", "Shop", "ShopConfig"]
