"""The `zapvoice` command. Each command takes the few settings that matter to it as flags; every setting can
be given in a TOML file (--config), as -c section.key=value, or in ZAPVOICE_* environment variables."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, get_origin

from pydantic import SecretStr, ValidationError

from zapvoice.settings import ConfigError, Settings, cli_aliases, flat_names, load

if TYPE_CHECKING:  # loading it imports faster-whisper, which only some commands need
    from collections.abc import Callable

    from zapvoice.providers.stt import WhisperSTT

log = logging.getLogger("zapvoice")


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`zapvoice config defaults --markdown | head -1`): not an error worth a
        # traceback. Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        loaded = _load(args)
    except ConfigError as exc:
        print(f"zapvoice: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"zapvoice: invalid settings:\n{_describe(exc)}", file=sys.stderr)
        return 2
    settings = loaded.settings
    logging.basicConfig(level=settings.service.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # An INFO line per request (or connection) drowns ours.
    for chatty in ("httpx", "httpx2", "httpcore", "faster_whisper", "websockets.server"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    args.origins = loaded.origins
    return args.run(settings, args)


def _load(args: argparse.Namespace):
    """The settings of a parsed command line: its --config, -c and flags over ZAPVOICE_* and the defaults."""
    return load(getattr(args, "config", None) or getattr(args, "root_config", None),
                getattr(args, "root_assignments", []) + getattr(args, "assignments", []), _flag_values(args))


def serve(settings: Settings, _: argparse.Namespace) -> int:
    import uvicorn

    from zapvoice.composition import service_engines
    from zapvoice.http_server import server_config
    from zapvoice.providers.model_store import ModelError
    from zapvoice.providers.service import create_app

    if not settings.service.is_loopback and settings.service.token is None and settings.service.allow_no_auth:
        log.warning("serving on %s with no token (--allow-no-auth): anyone who reaches port %d can use the "
                    "service", settings.service.host, settings.service.port)
    if not _ports_free(settings, "serve"):
        return 2
    if settings.service.token is None and not settings.service.allow_no_auth:
        with_token = _with_generated_token(settings)
        if with_token is None:
            return 2
        settings = with_token
    _say_where(settings)
    try:
        engines = service_engines(settings)
    except ModelError as exc:
        print(f"zapvoice: {exc}", file=sys.stderr)
        return 2
    gateway = None
    if settings.gateway.port is not None:
        from zapvoice.agent.gateway.commands import beside_service

        gateway = beside_service(settings, engines)
    uvicorn.Server(server_config(create_app(settings, engines, gateway), settings.service)).run()
    return 0


def _with_generated_token(settings: Settings) -> Settings | None:
    """`settings` with the data directory's token (generated on the first start), or None after saying why not."""
    from zapvoice.first_run import TokenFileError, loose_permissions, provider_token, zuckzapgo_instructions

    try:
        token = provider_token(settings.service)
    except TokenFileError as exc:
        print(f"zapvoice: {exc}", file=sys.stderr)
        return None
    if token.created:
        print(zuckzapgo_instructions(settings.service, token.value), flush=True)
    else:
        log.info("provider token: the one in %s (generated on the first start; --token-file to use another)",
                 token.path)
        if loose_permissions(token.path):
            log.warning("%s can be read by other users: chmod 600 it", token.path)
    service = settings.service.model_copy(update={"token": SecretStr(token.value)})
    return settings.model_copy(update={"service": service})


def _say_where(settings: Settings) -> None:
    records = settings.agent.record_dir
    log.info("data directory %s; call records %s", settings.service.data_dir,
             f"in {records}" if records else "off (agent.record_dir is empty)")


def agent(settings: Settings, _: argparse.Namespace) -> int:
    from zapvoice.agent.zuckzapgo.commands import run_agent

    if not _ports_free(settings, "agent"):
        return 2
    _say_where(settings)
    return run_agent(settings)


def call(settings: Settings, args: argparse.Namespace) -> int:
    from zapvoice.agent.zuckzapgo.commands import place_call

    return place_call(settings, args.phone)


def gateway(settings: Settings, args: argparse.Namespace) -> int:
    from zapvoice.agent.gateway.commands import run_gateway

    if not _ports_free(settings, "gateway"):
        return 2
    _say_where(settings)
    return run_gateway(settings, args.echo)


def health(_: Settings, args: argparse.Namespace) -> int:
    """Exit 0 if the serve, agent or gateway that `args.target` runs (default: PID 1's command, a container's)
    answers on its /health; its settings are read as that command reads them."""
    from zapvoice.health import CHECKED_COMMANDS, HealthError, health_url, probe, running_argv

    try:
        argv = args.target or running_argv()
        target = _parser().parse_args(argv)
        name = getattr(getattr(target, "run", None), "__name__", "")
        if name not in CHECKED_COMMANDS:
            raise HealthError(f"`zapvoice {' '.join(argv)}` serves nothing to check: "
                              f"name one of {', '.join(CHECKED_COMMANDS)}")
        url = health_url(name, _load(target).settings)
    except (HealthError, ConfigError) as exc:
        print(f"zapvoice: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"zapvoice: invalid settings:\n{_describe(exc)}", file=sys.stderr)
        return 2
    healthy, line = probe(url, args.timeout)
    print(line)
    return 0 if healthy else 1


def _ports_free(settings: Settings, command: str) -> bool:
    """Every port `command` listens on can be bound: checked before the models load, not after."""
    from zapvoice.ports import listeners, unavailable

    problem = unavailable(listeners(settings, command))
    if problem:
        print(f"zapvoice: {problem}", file=sys.stderr)
    return problem is None


def zuckzapgo_setup(settings: Settings, _: argparse.Namespace) -> int:
    from zapvoice.agent.zuckzapgo.commands import setup

    return setup(settings)


def models_pull(settings: Settings, args: argparse.Namespace) -> int:
    from zapvoice.providers.model_store import ModelError, ModelStore

    store = ModelStore(settings.models.dir, hub_url=settings.models.hub_url)
    if args.all:
        entries = list(store.catalog.values())
    else:
        turn = [settings.turns.smart_turn_model] if settings.turns.end_of_turn == "smart-turn" else []
        names = args.names or [settings.stt.whisper_model, *settings.tts.voices, *turn]
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

    from zapvoice.evaluation import EvalSetError, evaluate, format_comparison, format_report, load_eval_set
    from zapvoice.providers.contract_clients import ContractSTT
    from zapvoice.providers.model_store import ModelError

    try:
        clips = load_eval_set(args.source)
    except EvalSetError as exc:
        print(f"zapvoice: {exc}", file=sys.stderr)
        return 2
    engines: list[tuple[str, Callable[[], ContractSTT | WhisperSTT]]]
    if settings.stt.url:
        token = settings.agent.provider_token.get_secret_value() if settings.agent.provider_token else None
        engines = [(settings.stt.url, partial(ContractSTT, settings.stt.url, token, settings.agent.provider_timeout_s))]
    else:
        names = [n.strip() for n in (args.models or settings.stt.whisper_model).split(",") if n.strip()]
        engines = [(name, partial(_load_whisper_named, settings, name)) for name in names]
    language = settings.stt.language
    suffix = f" through a {args.phone_line} phone line" if args.phone_line else ""

    async def run_all() -> list:
        reports = []
        for name, load_engine in engines:
            stt = await asyncio.to_thread(load_engine)
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


def _load_whisper_named(settings: Settings, name: str) -> WhisperSTT:
    from zapvoice.composition import load_whisper

    return load_whisper(_with_whisper(settings, name))


def _with_whisper(settings: Settings, name: str) -> Settings:
    return settings.model_copy(update={"stt": settings.stt.model_copy(update={"whisper_model": name})})


def models_list(settings: Settings, _: argparse.Namespace) -> int:
    from zapvoice.providers.model_store import ModelStore, is_complete

    store = ModelStore(settings.models.dir, hub_url=settings.models.hub_url)
    for entry in store.catalog.values():
        here = "present" if is_complete(entry, store.local_path(entry)) else "missing"
        print(f"{entry.kind:8} {entry.name:24} {here:8} {entry.repo}")
    return 0


def config_show(settings: Settings, args: argparse.Namespace) -> int:
    """Each setting's effective value and where it came from; secrets are masked."""
    for section, values in settings:
        for key, value in values:
            name = f"{section}.{key}"
            print(f"{name:32} {_shown(value):40} {args.origins[name]}")
    return 0


def config_defaults(_: Settings, args: argparse.Namespace) -> int:
    """Every setting with its environment variables and default; --markdown for the README table."""
    rows = []
    for flat, (section, key) in flat_names().items():
        field = Settings.sections()[section].model_fields[key]
        default = _HOME_DEFAULTS.get((section, key)) or _shown(field.get_default())
        envs = f"ZAPVOICE_{section.upper()}__{key.upper()}", f"ZAPVOICE_{flat.upper()}"
        rows.append((f"{section}.{key}", *envs, default, field.description or ""))
    if args.markdown:
        print("| setting | environment | old environment name | default | meaning |\n|---|---|---|---|---|")
        for name, nested, old, default, meaning in rows:
            print(f"| `{name}` | `{nested}` | `{old}` | `{default}` | {meaning} |")
    else:
        for name, nested, old, default, meaning in rows:
            print(f"{name:32} {nested:40} {old:36} {default:28} {meaning}")
    return 0


# Defaults under the home directory, shown as a user's would be rather than as this machine's.
_HOME_DEFAULTS = {("models", "dir"): "~/.cache/zapvoice", ("service", "data_dir"): "~/.local/share/zapvoice"}


def _shown(value: object) -> str:
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, list):
        return ",".join(value)
    return "" if value is None else str(value)


# The settings each command takes as flags; every other one comes from --config, -c or the environment.
_ENGINES = ("stt.whisper_model", "tts.voices", "models.dir", "models.auto_download", "models.hub_url", "llm.url",
            "llm.model",
            "llm.api_key", "stt.url", "tts.url",
            "agent.provider_token")
_COMMAND_FLAGS = {
    "serve": ("service.host", "service.port", "service.token", "service.allow_no_auth", "service.log_level",
              "stt.whisper_model", "tts.voices", "models.dir", "models.auto_download", "models.hub_url", "llm.url",
              "llm.model", "llm.api_key", "gateway.port"),
    "agent": ("zuckzapgo.url", "zuckzapgo.token", "zuckzapgo.webhook_secret", "service.host", "service.port",
              "service.log_level", *_ENGINES),
    "call": ("zuckzapgo.url", "zuckzapgo.token", "service.log_level", *_ENGINES),
    "gateway": ("gateway.host", "gateway.port", "gateway.sample_rate", "gateway.encoding", "gateway.certfile",
                "gateway.keyfile", "service.log_level", *_ENGINES),
    "setup": ("zuckzapgo.url", "zuckzapgo.token"),
    "pull": ("models.dir", "models.hub_url", "stt.whisper_model", "tts.voices"),
    "list": ("models.dir", "models.hub_url"),
    "eval": ("stt.whisper_model", "models.dir", "models.auto_download", "models.hub_url", "stt.language", "stt.url",
             "agent.provider_token"),
}


def _parser() -> argparse.ArgumentParser:
    common = _config_options("")
    parser = argparse.ArgumentParser(prog="zapvoice", description=__doc__, allow_abbrev=False,
                                     parents=[_config_options("root_")])
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('zapvoice')}")
    commands = parser.add_subparsers(metavar="COMMAND")

    def command(group, name: str, flags: str | None = None, **kwargs) -> argparse.ArgumentParser:
        sub = group.add_parser(name, allow_abbrev=False, parents=[common], **kwargs)
        _add_setting_flags(sub, _COMMAND_FLAGS.get(flags or name, ()))
        return sub

    command(commands, "serve", help="run the /stt, /llm and /tts service for ZuckZapGo "
            "(and the 4143 gateway with --gateway-port)").set_defaults(run=serve)
    command(commands, "agent", help="answer WhatsApp calls through ZuckZapGo (manual mode)").set_defaults(run=agent)
    call_cmd = command(commands, "call", help="place a WhatsApp call through ZuckZapGo and talk")
    call_cmd.add_argument("phone", help="country code and number, digits only: 5521999999999")
    call_cmd.set_defaults(run=call)
    gateway_cmd = command(commands, "gateway", help="answer calls from a telephony gateway (WebSocket, port 4143)")
    gateway_cmd.add_argument("--echo", action="store_true",
                             help="no models: answer, press 1, echo the caller's audio, hang up (checks a gateway)")
    gateway_cmd.set_defaults(run=gateway)
    health_cmd = commands.add_parser(
        "health", allow_abbrev=False, help="exit 0 if a running serve, agent or gateway answers on its port",
        description="Checks GET /health of the command given, on the port its flags, --config and ZAPVOICE_* "
        "settings give it; with no command, the one PID 1 runs (a container's, for its HEALTHCHECK).")
    health_cmd.add_argument("--timeout", type=float, default=4.0, metavar="S", help="seconds to wait for the answer")
    health_cmd.add_argument("target", nargs=argparse.REMAINDER, metavar="COMMAND ...",
                            help="the command as it is run, with its flags: gateway --gateway-port 5000")
    health_cmd.set_defaults(run=health)
    zuckzapgo = commands.add_parser("zuckzapgo", help="configure a ZuckZapGo instance", allow_abbrev=False
                                    ).add_subparsers(metavar="ACTION")
    command(zuckzapgo, "setup", help="enable the calls engine in manual mode and subscribe to call events"
            ).set_defaults(run=zuckzapgo_setup)

    models = commands.add_parser("models", help="fetch or list models (models.txt)", allow_abbrev=False
                                 ).add_subparsers(metavar="ACTION")
    pull = command(models, "pull", help="fetch models; default: the configured Whisper model and voices")
    pull.add_argument("names", nargs="*", help="names from models.txt")
    pull.add_argument("--all", action="store_true", help="every model in models.txt")
    pull.add_argument("--force", action="store_true", help="fetch again even when present")
    pull.set_defaults(run=models_pull)
    command(models, "list", help="models in models.txt and whether they are present").set_defaults(run=models_list)

    eval_cmd = command(commands, "eval", help="word error rate and latency of the STT on your own recordings")
    eval_cmd.add_argument("source", type=Path,
                          help="a folder of name.wav + name.txt, or a TSV file of: audio path<TAB>transcript")
    eval_cmd.add_argument("--models", metavar="A,B", help="Whisper models to compare (names from models.txt or "
                          "folders); default: stt.whisper_model. Ignored with --stt-url")
    eval_cmd.add_argument("--phone-line", choices=("mulaw", "alaw"),
                          help="pass each clip through an 8 kHz G.711 line first, as a gateway call would")
    eval_cmd.set_defaults(run=evaluate)

    config = commands.add_parser("config", help="the effective settings, or every setting and its default",
                                 allow_abbrev=False).add_subparsers(metavar="ACTION")
    command(config, "show", help="each setting's value and where it came from (default, file, env, -c)"
            ).set_defaults(run=config_show)
    defaults = command(config, "defaults", help="every setting, its environment variables and default")
    defaults.add_argument("--markdown", action="store_true", help="as the README's table")
    defaults.set_defaults(run=config_defaults)
    return parser


def _config_options(prefix: str) -> argparse.ArgumentParser:
    """--config and -c, before the command or after it; the two places keep separate names because a
    command's parser would otherwise replace what was given before it."""
    options = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    options.add_argument("--config", dest=f"{prefix}config", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                         help="a TOML file of settings in sections ([stt], [llm], ...; `zapvoice config defaults`)")
    options.add_argument("-c", dest=f"{prefix}assignments", action="append", metavar="SECTION.KEY=VALUE",
                         default=argparse.SUPPRESS, help="set any setting (repeatable), e.g. -c vad.end_silence_ms=800")
    return options


def _add_setting_flags(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    """Flags under the settings' flat names (--whisper-model); a secret only as --NAME-file, never on argv."""
    if not names:
        return
    group = parser.add_argument_group("settings (others: --config, -c, ZAPVOICE_* variables)")
    flat = {where: name for name, where in flat_names().items()}
    for name in names:
        section, key = name.split(".")
        field = Settings.sections()[section].model_fields[key]
        flag = "--" + flat[(section, key)].replace("_", "-")
        dest = f"setting:{name}"
        if field.annotation == SecretStr | None:
            group.add_argument(f"{flag}-file", type=_secret_file, metavar="FILE", dest=dest, default=argparse.SUPPRESS,
                               help=f"a file holding {name}: {field.description}")
        elif field.annotation is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, dest=dest, default=argparse.SUPPRESS,
                               help=field.description)
        elif get_origin(field.annotation) is list:
            group.add_argument(flag, *cli_aliases(field), action="append", metavar="A,B", dest=dest,
                               default=argparse.SUPPRESS, help=field.description)
        else:
            group.add_argument(flag, *cli_aliases(field), metavar=key.split("_")[-1].upper(), dest=dest,
                               default=argparse.SUPPRESS, help=field.description)


def _secret_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {exc.strerror}") from None


def _flag_values(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """The settings given as flags, as sections; repeated list flags are joined."""
    values: dict[str, dict[str, object]] = {}
    for dest, value in vars(args).items():
        if dest.startswith("setting:"):
            section, key = dest.removeprefix("setting:").split(".")
            values.setdefault(section, {})[key] = ",".join(value) if isinstance(value, list) else value
    return values


def _describe(exc: ValidationError) -> str:
    """One line per problem, named as in a config file: `  vad: stop_db (9) must be below start_db (8)`."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        lines.append(f"  {where}: {error['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
