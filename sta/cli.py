"""``sta``: the platform's command line.

Each area of the platform registers its own subcommands from a module in
``sta.commands`` (a ``register(subparsers)`` function), so the CLI grows by
adding a module, and every command calls the same library code the DAGs do.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import sta.commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sta", description="STA data platform")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(sta.commands.__path__), key=lambda m: m.name):
        try:
            module = importlib.import_module(f"sta.commands.{mod.name}")
        except Exception as exc:  # noqa: BLE001 - one broken area must not take the whole CLI down
            broken = sub.add_parser(mod.name, help=f"(unavailable: {type(exc).__name__})")
            broken.set_defaults(func=_unavailable(mod.name, exc))
            continue
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def _unavailable(name: str, exc: Exception):  # noqa: ANN202
    def run(_args: argparse.Namespace) -> int:
        print(f"sta: the '{name}' commands failed to load: {exc}", file=sys.stderr)
        return 2

    return run


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear line for the user, not a traceback
        from foundation.partners import ConfigError

        if isinstance(exc, (ConfigError, FileNotFoundError, PermissionError, ValueError)):
            print(f"sta {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
