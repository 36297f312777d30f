"""``callboard serve`` and ``callboard mock-provider``: parse, set up logging, delegate.

Wired into ``engine/cli/main.py`` with :func:`add_serve_parser` and
:func:`add_mock_provider_parser`; every behaviour lives in
:mod:`engine.serve.server` and :mod:`sims.mock_provider`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import resource
import signal
import sys

import trio

from actors.failures import MockProfileName

# Plain values: argparse lists refused choices by their repr.
PROFILES = tuple(name.value for name in MockProfileName)


def cmd_serve(args: argparse.Namespace) -> int:
    from engine.serve.asgi import AddressInUse
    from engine.serve.live_config import load_config
    from engine.serve.logs import logging_to
    from engine.serve.server import serve_router

    overrides = [*(args.set or ()), *(["callers.allow_no_keys=true"] if args.allow_no_keys else [])]
    if args.otlp is not None:
        overrides.append(f"traces.otlp_endpoint={json.dumps(args.otlp)}")
    if args.traces_file is not None:
        overrides.append(f"traces.file={json.dumps(args.traces_file)}")
    config = load_config(
        args.config,
        providers=args.provider or (),
        provider_model=args.model,
        overrides=overrides,
        redis=args.redis,
    )
    # Read every key now: a missing one stops the server before it starts, naming it.
    secrets = [
        s for i, p in enumerate(config.providers) for s in p.endpoint(os.environ, i).secrets()
    ]
    server = config.server
    log_file = server.log_file if args.log_file is None else args.log_file
    with logging_to(
        log_file or None,
        level=args.log_level or server.log_level,
        secrets=secrets,
        max_bytes=server.log_max_bytes,
        backups=server.log_backups,
    ):
        names = ", ".join(f"{p.name} ({p.kind} {p.base_url})" for p in config.providers)
        print(f"callboard serve: {len(config.providers)} provider(s): {names}", file=sys.stderr)
        if config.state.redis is not None:
            from engine.serve.state.config import redacted

            print(
                f"callboard serve: shared state on {redacted(config.state.redis)}", file=sys.stderr
            )
        _more_open_files()
        try:
            with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C while shutting down
                trio.run(
                    functools.partial(
                        serve_router,
                        config,
                        host=args.host,
                        port=args.port,
                        shutdown_trigger=until_signalled,
                        grace=args.grace,
                        task_status=_Announce(),
                    )
                )
        except AddressInUse as exc:
            print(f"callboard serve: {exc}", file=sys.stderr)
            return 2
        print("callboard serve: stopped", file=sys.stderr)
    return 0


def cmd_mock_provider(args: argparse.Namespace) -> int:
    from engine.serve.asgi import AddressInUse, serve_app
    from engine.serve.logs import logging_to
    from sims.mock_provider import MockProvider

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env) or None
        if api_key is None:
            print(
                f"callboard: --api-key-env: environment variable {args.api_key_env!r} is not set",
                file=sys.stderr,
            )
            return 2
    faults = []
    if args.replay:
        from sims.experiment import replay_faults

        faults = replay_faults(args.replay, args.account or args.name)
    mock = MockProvider(
        args.name,
        args.profile,
        speed=args.speed,
        api_key=api_key,
        seed=args.seed,
        faults=faults,
        time_scale=args.time_scale,
    )
    with logging_to(None, level="INFO"):
        try:
            with contextlib.suppress(KeyboardInterrupt):
                trio.run(
                    functools.partial(
                        serve_app,
                        mock,
                        args.host,
                        args.port,
                        graceful_timeout=1.0,
                        shutdown_trigger=until_signalled,
                        task_status=_Announce(),
                    )
                )
        except AddressInUse as exc:
            print(f"callboard mock-provider: {exc}", file=sys.stderr)
            return 2
        print("callboard mock-provider: stopped", file=sys.stderr)
    return 0


def _more_open_files() -> None:
    """Raise this process's open-file limit to what the system allows it.

    Every client connection and every provider connection is a file descriptor, and
    a common default soft limit (1,024) would refuse connections long before thousands
    of interviews; the hard limit is the operator's real bound.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def until_signalled() -> None:
    """Return at the first SIGINT or SIGTERM: hypercorn then shuts down gracefully.

    Without it, Ctrl-C raises KeyboardInterrupt in whichever task runs at that
    moment, possibly mid-write to a client.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: a number of seconds >= 0")
    return value


class _Announce:
    """Prints the URL once the server listens (what a script waiting for it reads)."""

    def started(self, url: str | None = None) -> None:
        print(f"listening on {url}", file=sys.stderr, flush=True)


def add_serve_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    serve = subparsers.add_parser(
        "serve",
        help="run the live router: OpenAI and Anthropic APIs, sessions, health, metrics",
    )
    serve.add_argument(
        "config", nargs="?", help="a TOML file with [[providers]] and router tables (optional)"
    )
    serve.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: server.port, 8080)")
    serve.add_argument(
        "--provider",
        action="append",
        metavar="NAME=BASE_URL",
        help="add an OpenAI-compatible provider without a key, e.g. "
        "a=http://127.0.0.1:9001/v1 (repeatable)",
    )
    serve.add_argument(
        "--model",
        default="default",
        help="model name of the --provider entries (default: %(default)s)",
    )
    serve.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set timeouts.first_byte=5 (repeatable)",
    )
    serve.add_argument(
        "--redis",
        metavar="redis://HOST:PORT/DB",
        help="share quarantines, rate limits, quotas, sessions and the cache with every "
        "router on this Redis database (default: state.redis; unset: this router alone)",
    )
    serve.add_argument(
        "--log-file", help="rotating log file ('' for none; default: server.log_file)"
    )
    serve.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="least severe log line written (default: server.log_level)",
    )
    serve.add_argument(
        "--grace",
        type=_seconds,
        help="on SIGTERM, seconds requests in flight may take to finish before they are "
        "cancelled with a 503 (default: server.grace, 10)",
    )
    serve.add_argument(
        "--otlp",
        metavar="URL",
        help="send every request and attempt as OpenTelemetry spans to this OTLP/HTTP "
        "collector, e.g. http://localhost:4318 (default: traces.otlp_endpoint)",
    )
    serve.add_argument(
        "--traces-file",
        metavar="PATH",
        help="write the spans to this file as OTLP JSON, one export request a line "
        "(default: traces.file)",
    )
    serve.add_argument(
        "--allow-no-keys",
        action="store_true",
        help="listen on a non-loopback address although no caller key is configured "
        "(anyone who reaches the port can spend the accounts' quota)",
    )
    serve.set_defaults(handler=cmd_serve)
    return serve


def cmd_caller_key(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.serve.callers.config import KEY_ID
    from engine.serve.callers.keys import entry_toml, keys_from_file, new_key
    from engine.serve.live_config import ConfigError, load_config

    if not KEY_ID.fullmatch(args.id):
        raise ConfigError("caller-key", [f"id: got {args.id!r}; allowed: letters, digits, . _ -"])
    file = Path(args.file)
    if file.exists():
        config = load_config(providers=["x=http://127.0.0.1:9/v1"]).callers
        taken = {k.id for k in keys_from_file(config, file)}
        if args.id in taken:
            raise ConfigError(str(file), [f"id: {args.id!r} is already in the file"])
    key = new_key()
    with file.open("a") as out:
        out.write(entry_toml(args.id, key))
    print(key)
    print(f"callboard caller-key: added {args.id!r} to {file} (its hash only)", file=sys.stderr)
    return 0


def add_caller_key_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    command = subparsers.add_parser(
        "caller-key",
        help="make a caller key for `callboard serve`: prints the key, appends its hash to a file",
    )
    command.add_argument("id", help="the key's id: what logs and metrics name")
    command.add_argument(
        "--file",
        default="callers.toml",
        help="the keys file (callers.keys_file; default: %(default)s)",
    )
    command.set_defaults(handler=cmd_caller_key)
    return command


def add_mock_provider_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    mock = subparsers.add_parser(
        "mock-provider",
        help="serve a virtual provider over OpenAI or Anthropic HTTP; failure modes switchable",
    )
    mock.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    mock.add_argument("--port", type=int, required=True, help="port to listen on")
    mock.add_argument(
        "--profile",
        default="healthy",
        choices=PROFILES,
        help="how it behaves (default: %(default)s); switch at run time with "
        'POST /admin/profile {"profile": "down"}',
    )
    mock.add_argument("--name", default="mock", help="its name in answers (default: %(default)s)")
    mock.add_argument(
        "--speed", type=float, default=1.0, help="divide every delay by this (default: 1)"
    )
    mock.add_argument("--seed", type=int, default=0, help="seed of its random draws")
    mock.add_argument(
        "--api-key-env", help="require `Authorization: Bearer $VAR` (the variable's name)"
    )
    mock.add_argument(
        "--replay",
        metavar="SCENARIO|EXPERIMENT",
        help="replay the fault schedule of a scenario (or an experiment's base scenario) "
        "aimed at --account, in real time from the first request; restart it with "
        'POST /admin/replay {"at": 0}',
    )
    mock.add_argument(
        "--account", help="whose faults to replay: an account of the scenario (default: --name)"
    )
    mock.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="scenario seconds per real second of the replay (default: 1; 60: an hour in a minute)",
    )
    mock.set_defaults(handler=cmd_mock_provider)
    return mock
