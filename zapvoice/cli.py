"""The `zapvoice` command. Every setting is also a flag (`--whisper-model`), generated from Settings."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import get_args, get_origin

from pydantic import ValidationError

from zapvoice.settings import Settings

log = logging.getLogger("zapvoice")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        settings = Settings(**_overrides(args))
    except ValidationError as exc:
        print(f"zapvoice: invalid setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # An INFO line per request (or connection) drowns ours.
    for chatty in ("httpx", "httpx2", "httpcore", "faster_whisper", "websockets.server"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    return args.run(settings, args)


def serve(settings: Settings, _: argparse.Namespace) -> int:
    import uvicorn

    from zapvoice.composition import service_engines
    from zapvoice.providers.model_store import ModelError
    from zapvoice.providers.service import create_app
    from zapvoice.http_server import server_config

    if not settings.is_loopback and settings.token is None and not settings.allow_no_auth:
        print(f"zapvoice: refusing to serve on {settings.host} without a token. Set --token (ZAPVOICE_TOKEN) "
              "to ZuckZapGo's callProviderToken, or pass --allow-no-auth to accept anyone.", file=sys.stderr)
        return 2
    try:
        engines = service_engines(settings)
    except ModelError as exc:
        print(f"zapvoice: {exc}", file=sys.stderr)
        return 2
    gateway = None
    if settings.gateway_port is not None:
        from zapvoice.agent.gateway.commands import beside_service

        gateway = beside_service(settings, engines)
    uvicorn.Server(server_config(create_app(settings, engines, gateway), settings)).run()
    return 0


def agent(settings: Settings, _: argparse.Namespace) -> int:
    from zapvoice.agent.zuckzapgo.commands import run_agent

    return run_agent(settings)


def call(settings: Settings, args: argparse.Namespace) -> int:
    from zapvoice.agent.zuckzapgo.commands import place_call

    return place_call(settings, args.phone)


def gateway(settings: Settings, args: argparse.Namespace) -> int:
    from zapvoice.agent.gateway.commands import run_gateway

    return run_gateway(settings, args.echo)


def zuckzapgo_setup(settings: Settings, _: argparse.Namespace) -> int:
    from zapvoice.agent.zuckzapgo.commands import setup

    return setup(settings)


def models_pull(settings: Settings, args: argparse.Namespace) -> int:
    from zapvoice.providers.model_store import ModelError, ModelStore

    store = ModelStore(settings.model_dir, hub_url=settings.hub_url)
    if args.all:
        entries = list(store.catalog.values())
    else:
        names = args.names or [settings.whisper_model, *settings.voices]
        try:
            entries = [store.find(name) for name in names]
        except ModelError as exc:
            print(f"zapvoice: {exc}", file=sys.stderr)
            return 2
    for entry in entries:
        try:
            path = store.pull(entry, force=args.force)
        except ModelError as exc:
            print(f"zapvoice: {exc}", file=sys.stderr)
            return 1
        print(f"{entry.kind:8} {entry.name:24} {path}")
    return 0


def evaluate(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from tqdm import tqdm

    from zapvoice.providers.contract_clients import ContractSTT
    from zapvoice.composition import load_whisper
    from zapvoice.providers.model_store import ModelError
    from zapvoice.evaluation import EvalSetError, evaluate, format_comparison, format_report, load_eval_set

    try:
        clips = load_eval_set(args.source)
    except EvalSetError as exc:
        print(f"zapvoice: {exc}", file=sys.stderr)
        return 2
    if settings.stt_url:
        token = settings.provider_token.get_secret_value() if settings.provider_token else None
        engines = [(settings.stt_url, lambda: ContractSTT(settings.stt_url, token, settings.provider_timeout_s))]
    else:
        names = [n.strip() for n in (args.models or settings.whisper_model).split(",") if n.strip()]
        engines = [(name, lambda name=name: load_whisper(settings.model_copy(update={"whisper_model": name})))
                   for name in names]
    language = settings.stt_language
    suffix = f" through a {args.phone_line} phone line" if args.phone_line else ""

    async def run_all() -> list:
        reports = []
        for name, load in engines:
            stt = await asyncio.to_thread(load)
            try:
                with tqdm(total=len(clips), desc=name, unit="clip", file=sys.stderr, leave=False) as bar:
                    reports.append(await evaluate(stt, name + suffix, clips, language, args.phone_line, bar.update))
            finally:
                if isinstance(stt, ContractSTT):
                    await stt.aclose()
                else:
                    stt.close()
        return reports

    try:
        reports = asyncio.run(run_all())
    except (ModelError, EvalSetError) as exc:
        print(f"zapvoice: {exc}", file=sys.stderr)
        return 2
    for report in reports:
        print(format_report(report), end="\n\n")
    print(format_comparison(reports))
    return 0


def models_list(settings: Settings, _: argparse.Namespace) -> int:
    from zapvoice.providers.model_store import ModelStore, is_complete

    store = ModelStore(settings.model_dir, hub_url=settings.hub_url)
    for entry in store.catalog.values():
        here = "present" if is_complete(entry, store.local_path(entry)) else "missing"
        print(f"{entry.kind:8} {entry.name:24} {here:8} {entry.repo}")
    return 0


def show_settings(settings: Settings, args: argparse.Namespace) -> int:
    """Every setting with its flag, environment variable and default; --markdown for the README table."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = ",".join(default) if isinstance(default, list) else ("" if default is None else default)
        if name == "model_dir":
            shown = "~/.cache/zapvoice"
        rows.append((f"--{name.replace('_', '-')}", f"ZAPVOICE_{name.upper()}", str(shown), field.description or ""))
    if args.markdown:
        print("| flag | environment | default | meaning |\n|---|---|---|---|")
        for flag, env, default, meaning in rows:
            print(f"| `{flag}` | `{env}` | `{default}` | {meaning} |")
    else:
        for flag, env, default, meaning in rows:
            print(f"{flag:28} {env:34} {default:28} {meaning}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zapvoice", description=__doc__)
    commands = parser.add_subparsers(metavar="COMMAND")

    serve_cmd = commands.add_parser("serve", help="run the /stt, /llm and /tts service for ZuckZapGo "
                                    "(and the 4143 gateway with --gateway-port)")
    serve_cmd.set_defaults(run=serve)

    agent_cmd = commands.add_parser("agent", help="answer WhatsApp calls through ZuckZapGo (manual mode)")
    agent_cmd.set_defaults(run=agent)
    call_cmd = commands.add_parser("call", help="place a WhatsApp call through ZuckZapGo and talk")
    call_cmd.add_argument("phone", help="country code and number, digits only: 5521999999999")
    call_cmd.set_defaults(run=call)
    gateway_cmd = commands.add_parser("gateway", help="answer calls from a telephony gateway (WebSocket, port 4143)")
    gateway_cmd.add_argument("--echo", action="store_true",
                             help="no models: answer, press 1, echo the caller's audio, hang up (checks a gateway)")
    gateway_cmd.set_defaults(run=gateway)
    zuckzapgo = commands.add_parser("zuckzapgo", help="configure a ZuckZapGo instance").add_subparsers(metavar="ACTION")
    zuckzapgo.add_parser("setup", help="enable the calls engine in manual mode and subscribe to Call events"
                         ).set_defaults(run=zuckzapgo_setup)

    models = commands.add_parser("models", help="fetch or list models (models.txt)").add_subparsers(metavar="ACTION")
    pull = models.add_parser("pull", help="fetch models; default: the configured Whisper model and voices")
    pull.add_argument("names", nargs="*", help="names from models.txt")
    pull.add_argument("--all", action="store_true", help="every model in models.txt")
    pull.add_argument("--force", action="store_true", help="fetch again even when present")
    pull.set_defaults(run=models_pull)
    models.add_parser("list", help="models in models.txt and whether they are present").set_defaults(run=models_list)

    eval_cmd = commands.add_parser("eval", help="word error rate and latency of the STT on your own recordings")
    eval_cmd.add_argument("source", type=Path,
                          help="a folder of name.wav + name.txt, or a TSV file of: audio path<TAB>transcript")
    eval_cmd.add_argument("--models", metavar="A,B", help="Whisper models to compare (names from models.txt or "
                          "folders); default: --whisper-model. Ignored with --stt-url")
    eval_cmd.add_argument("--phone-line", choices=("mulaw", "alaw"),
                          help="pass each clip through an 8 kHz G.711 line first, as a gateway call would")
    eval_cmd.set_defaults(run=evaluate)

    shown = commands.add_parser("settings", help="list every setting, its flag, variable and default")
    shown.add_argument("--markdown", action="store_true")
    shown.set_defaults(run=show_settings)

    for command in (serve_cmd, agent_cmd, call_cmd, gateway_cmd, *zuckzapgo.choices.values(), *models.choices.values(),
                    eval_cmd, shown):
        _add_setting_flags(command)
    return parser


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (also ZAPVOICE_<NAME> environment variables)")
    for name, field in Settings.model_fields.items():
        flags = [f"--{name.replace('_', '-')}", *(field.json_schema_extra or {}).get("cli_aliases", [])]
        kwargs = {"dest": f"setting_{name}", "default": argparse.SUPPRESS, "help": field.description}
        if field.annotation is bool:
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, **kwargs)
        elif get_origin(field.annotation) is list or list in get_args(field.annotation):
            group.add_argument(*flags, action="append", metavar="A,B", **kwargs)
        else:
            group.add_argument(*flags, metavar=name.split("_")[-1].upper(), **kwargs)


def _overrides(args: argparse.Namespace) -> dict:
    """The settings given on the command line; repeated list flags are joined."""
    values = {}
    for key, value in vars(args).items():
        if key.startswith("setting_"):
            values[key.removeprefix("setting_")] = ",".join(value) if isinstance(value, list) else value
    return values


if __name__ == "__main__":
    sys.exit(main())
