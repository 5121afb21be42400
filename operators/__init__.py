"""Pure stream logic: OTLP decoding, the quantile sketch, windowed signals and Scout."""
