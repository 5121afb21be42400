"""The `sre-space` command line.

Subcommands live with the part that implements them and are resolved by name at call time, so this
package imports nothing of the others (see docs/contracts.md).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from sre_space.paths import STATE_ENV
from sre_space.settings import CONFIG_ENV

# subcommand -> (module exposing add_arguments(parser) and run(args) -> int, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "init": ("sre_space.harness.init_cmd", "create the state folder and the GitOps repository"),
    "demo": (
        "sre_space.harness.demo",
        "run the closed loop (shop, dataflow, responders, dashboard) on one machine",
    ),
    "drill": (
        "sre_space.harness.drill",
        "a fire drill: inject a scenario, follow the loop, write drill.json",
    ),
    "replay": ("sre_space.harness.replay", "run recordings through the flow as a backtest"),
    "responders": (
        "sre_space.responders.loop",
        "run Brain, Fixer and Memory on the store's incidents",
    ),
    "diagnose": ("sinks.brain.cli", "root cause of a time range or of one trace"),
    "memory": ("sinks.memory.cli", "look up past incidents and post-mortems"),
    "dashboard": ("dashboard.cli", "start the dashboard (Streamlit)"),
    "config": ("sre_space.config_cmd", "print (show) or validate (check) the effective config"),
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(SUBCOMMANDS[name][0])


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="sre-space", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--state", help="state folder (default: $SRE_STATE_DIR or ./state)", default=None
    )
    parser.add_argument(
        "--config",
        dest="global_config",
        action="append",
        help="pipeline config YAML merged over the defaults, for any subcommand (repeatable;"
        " sets $SRE_CONFIG)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text)
        _load(name).add_arguments(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `sre-space`."""
    args = build_parser().parse_args(argv)
    # Every subcommand (and any child it starts) reads its settings from the environment: one
    # place to honour --state and --config. Put back on return, for callers in the same process.
    saved = {name: os.environ.get(name) for name in (STATE_ENV, CONFIG_ENV)}
    if args.state:
        os.environ[STATE_ENV] = args.state
    if args.global_config:
        os.environ[CONFIG_ENV] = os.pathsep.join(args.global_config)
    try:
        code: int = _load(args.command).run(args)
    except (ValueError, OSError) as exc:
        # Bad input (a config key, a missing file) is the user's to fix: say what, not a trace.
        print(f"sre-space {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return code


if __name__ == "__main__":
    sys.exit(main())
