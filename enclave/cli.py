"""``enclave``: the platform's command line: ``up`` (what ``make up`` runs: the whole enclave),
the checker demonstration, the control plane's ``admin`` and ``audit`` commands, linkage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from enclave import cli_admin, cli_backup, cli_datalab, cli_linkage
from enclave.control.errors import ControlError
from enclave.settings import Settings, SettingsError
from output_checker.errors import CheckerError


def _demo(args: argparse.Namespace) -> int:
    from enclave.demo import run_demo

    for line in run_demo(rows=args.rows, out_dir=args.out, seed=args.seed):
        print(line)
    return 0


def _up(args: argparse.Namespace) -> int:
    from enclave.linkage.errors import LinkageError
    from enclave.up.run import UpOptions, up
    from enclave.up.session_env import SessionEnvError
    from enclave.up.stack import StackError

    options = UpOptions(args.data_dir, args.port, args.population, args.session_env)
    try:
        return up(options)
    except (LinkageError, StackError, SessionEnvError) as error:
        print(f"enclave up: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the hub started: nothing to stop
        print("enclave up: interrupted", file=sys.stderr)
        return 130


def _serve(args: argparse.Namespace) -> int:
    from enclave.control.web.serve import serve  # Flask only when serving

    return serve(Settings.load(config_file=args.config), host=args.host, port=args.port)


def _check_encryption(args: argparse.Namespace) -> int:
    from enclave.ops.encryption import check

    paths = args.paths or [Settings.load(config_file=args.config).data_dir]
    try:
        found = [check(path) for path in paths]
    except ValueError as error:
        print(f"enclave check-encryption: error: {error}", file=sys.stderr)
        return 2
    for assessment in found:
        print(assessment.summary())
    return 0 if all(a.encrypted for a in found) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="enclave", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="check example outputs on generated microdata")
    demo.add_argument("--rows", type=int, default=200_000)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", type=Path, default=Path(".enclave/demo"))
    demo.set_defaults(run=_demo)
    run_all = sub.add_parser(
        "up", help="build the demo and run hub, proxy, review queue and workers (make up)"
    )
    run_all.add_argument("--data-dir", type=Path, default=Path(".enclave"))
    run_all.add_argument("--port", type=int, default=8000, help="the hub's public port")
    # tests: a small demonstration and a prebuilt session environment
    run_all.add_argument("--population", type=int, help=argparse.SUPPRESS)
    run_all.add_argument("--session-env", type=Path, help=argparse.SUPPRESS)
    run_all.set_defaults(run=_up)
    cli_admin.register(sub)
    cli_linkage.register(sub)
    cli_datalab.register(sub)
    cli_backup.register(sub)
    encryption = sub.add_parser(
        "check-encryption", help="exit 1 unless every path is on an encrypted (LUKS) device"
    )
    encryption.add_argument("paths", nargs="*", type=Path, help="default: the data directory")
    encryption.add_argument("--config", type=Path, help="TOML settings file (or $ENCLAVE_CONFIG)")
    encryption.set_defaults(run=_check_encryption)
    web = sub.add_parser("serve", help="run the admin web, the public register and the JSON API")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8000)
    web.add_argument("--config", type=Path, help="TOML settings file (or $ENCLAVE_CONFIG)")
    web.set_defaults(run=_serve)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except ControlError as error:
        print(f"enclave: error: {error} [{error.rule}]", file=sys.stderr)
        return 2
    except (CheckerError, SettingsError) as error:
        print(f"enclave: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
