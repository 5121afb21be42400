"""SRE-Space: the domain (records, settings, time) and the `sre-space` command line."""

__version__ = "0.1.0"
