"""chaos: the simulated shop that emits real OTLP, its fault scenarios, and labelled recordings.

In-process use (the demo):

    from chaos import Shop
    shop = Shop(seed=1, gitops_path="state/gitops")
    traces, metrics = shop.step(10)   # ExportTraceServiceRequest / ExportMetricsServiceRequest lists
    shop.inject("oom")
"""

from chaos.shop import Batch, Shop, ShopConfig

__all__ = ["Batch", "Shop", "ShopConfig"]
