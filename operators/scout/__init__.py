"""Scout: the detectors, incident correlation and the dataflow step that runs them per window.

`build_scout` is the entry the flows use; `ScoutStage` runs the same logic without Bytewax.
"""

from operators.scout.dataflow import ScoutStreams, build_scout
from operators.scout.stage import EdgesSeen, ScoutRecord, ScoutStage, edges_seen

__all__ = ["EdgesSeen", "ScoutRecord", "ScoutStage", "ScoutStreams", "build_scout", "edges_seen"]
