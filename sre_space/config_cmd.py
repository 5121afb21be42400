"""`sre-space config show|check`: the effective pipeline config (defaults merged with the files
of `--config`, else of SRE_CONFIG), every default filled in."""

from __future__ import annotations

import argparse

import yaml

from sre_space.settings import (
    config_paths,
    effective_config,
    env_config_paths,
    load_pipeline_config,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["show", "check"],
        help="show: print the effective config as YAML; check: validate only",
    )
    parser.add_argument(
        "--config",
        action="append",
        help="pipeline config YAML merged over the defaults (repeatable; default: $SRE_CONFIG)",
    )


def run(args: argparse.Namespace) -> int:
    files = config_paths(args.config) if args.config else env_config_paths()
    config = load_pipeline_config(*files)
    if args.action == "show":
        merged = " + ".join(["defaults", *(str(f) for f in files)])
        print(f"# effective pipeline config: {merged}")
        print(yaml.safe_dump(effective_config(config), sort_keys=False), end="")
    else:
        print(f"ok: {len(files)} file(s) over the defaults")
    return 0
