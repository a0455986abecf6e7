"""The ``hotline12345`` command."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from hotline.config import Config, ConfigError, load_config
from ivr.dialplan.loader import DialplanInvalid
from units.loader import DeskFilesInvalid
from web.auth import ApiToken, TokenRegistry, new_token, token_sha256

EXIT_CONFIG = 2


def _load(path: str) -> Config:
    from hotline.local_secrets import configured_secrets

    config = load_config(Path(path))
    secrets = configured_secrets(config)
    if secrets and Path(path).stat().st_mode & 0o077:
        print(
            f"hotline12345: warning: {path} holds secrets ({', '.join(secrets)}) and others may read it: "
            f"chmod 600 {path}",
            file=sys.stderr,
        )
    return config


def demo_token_file(config: Config) -> Path:
    return config.paths.runtime_dir / "api-token"


def token_registry(config: Config) -> TokenRegistry:
    """The configured tokens; with none configured, one admin token kept in runtime_dir/api-token."""
    if config.http.tokens:
        return TokenRegistry(config.http.tokens)
    path = demo_token_file(config)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_token() + "\n")
    token = path.read_text().strip()
    return TokenRegistry([ApiToken(name="local-admin", role="admin", sha256=token_sha256(token))])


def cmd_run(args: argparse.Namespace) -> int:
    import uvloop

    from common.clock import clock_from_environment
    from hotline.controller import Controller
    from hotline.logs import configure_logging
    from hotline.run import run_until_signalled

    config = _load(args.config)
    configure_logging(config.logging.level, config.logging.format)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack
    controller = Controller(config, token_registry(config), clock_from_environment(os.environ))
    # uvloop's event loop (libuv, C): the controller's tasks, timers and sockets cost less CPU
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run_until_signalled([controller]))
    return 0


def cmd_asr_worker(args: argparse.Namespace) -> int:
    from hotline.asr_worker import run_worker
    from hotline.logs import configure_logging

    config = _load(args.config)
    configure_logging(config.logging.level, config.logging.format)
    asyncio.run(run_worker(config))
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from hotline.asr_worker import transcribe_files

    return transcribe_files(_load(args.config), [Path(f) for f in args.files])


def cmd_stack(args: argparse.Namespace) -> int:
    from common.clock import clock_from_environment
    from hotline.demo_carrier import DemoCarrier, needs_demo_carrier, with_demo_carrier
    from hotline.logs import configure_logging
    from hotline.network import network_configs, platform_ids
    from hotline.stack import run_stack

    config = _load(args.config)
    configure_logging(config.logging.level, config.logging.format)
    carrier = None
    if needs_demo_carrier(config):  # no carrier trunk configured: the demo's own answers 110 … 95598
        config = with_demo_carrier(config)
        carrier = DemoCarrier.for_config(config)
    platforms = platform_ids(args.platforms, config.paths.dialplans_dir) if args.platforms else [config.platform.id]
    configs = network_configs(config, platforms)
    clock = clock_from_environment(os.environ)  # HOTLINE_TEST_NOW: every platform's controller
    tokens, token_file = token_registry(config), demo_token_file(config)
    return run_stack(configs, Path(args.config), tokens, token_file, clock, carrier=carrier)


def cmd_render(args: argparse.Namespace) -> int:
    from hotline.asterisk_files import write_asterisk_config

    config = _load(args.config)
    layout = write_asterisk_config(config, Path(args.out).resolve())
    print(f"rendered Asterisk configuration for {config.platform.id} into {layout.etc_dir}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    print(f"{args.config}: valid (platform {config.platform.id}, area code {config.platform.area_code})")
    return 0


def cmd_dialplan_check(args: argparse.Namespace) -> int:
    from ivr.dialplan.caller_lists import CALLER_LISTS_FILE, load_caller_lists
    from ivr.dialplan.directory import DIRECTORY_FILE, dialplan_files, load_directory, load_platform_dialplan
    from ivr.dialplan.loader import DialplanInvalid

    paths: list[Path] = []
    for given in [Path(p) for p in args.paths] or [Path("dialplans")]:
        if given.is_dir():  # a folder of dialplans, as people type it: every one, with its shared files
            found = [given / name for name in (DIRECTORY_FILE, CALLER_LISTS_FILE) if (given / name).is_file()]
            found += dialplan_files(given)
            if not found:
                print(f"{given}: no dialplan files (*.yaml) in this folder", file=sys.stderr)
                return 1
            paths += found
        else:
            paths.append(given)
    recorded = Path(args.prompts_dir) if args.prompts_dir else None
    failed = 0
    for path in paths:
        try:
            if path.name == DIRECTORY_FILE:  # every dialplan sees the directory beside it
                directory = load_directory(path)
                print(f"{path}: ok ({len(directory.hotlines)} hotlines)")
                continue
            if path.name == CALLER_LISTS_FILE:  # likewise the caller lists
                lists = load_caller_lists(path)
                numbers = sum(len(entry.numbers) for entry in lists.lists.values())
                print(f"{path}: ok ({len(lists.lists)} lists, {numbers} numbers)")
                continue
            plan = load_platform_dialplan(path, recorded)
        except DialplanInvalid as exc:
            failed += 1
            print(exc)
            continue
        for warning in plan.warnings:
            print(warning)
        print(f"{path}: ok ({len(plan.spec.nodes)} nodes, version {plan.version})")
    return 1 if failed else 0


def cmd_units_check(args: argparse.Namespace) -> int:
    from units.check import check_paths

    return check_paths([Path(p) for p in args.paths] or [Path("directory")], sys.stdout)


def cmd_knowledge_check(args: argparse.Namespace) -> int:
    from hotline.case_lookups import DirectoryReferences
    from knowledge.loader import KnowledgeInvalid, References, check_path
    from units.loader import DeskFilesInvalid
    from units.registry import DeskRegistry

    references: References | None = None
    if args.units_dir.is_dir():  # entries must name units and matter types the desk knows
        desk = DeskRegistry(args.units_dir)
        try:
            desk.load_initial()
        except DeskFilesInvalid as exc:
            print(f"{args.units_dir}: the units directory is broken, so entries cannot be checked against it:")
            print(exc)
            return 1
        references = DirectoryReferences(desk)
    paths = [Path(p) for p in args.paths] or [Path("knowledge_base")]
    failed = 0
    for path in paths:
        try:
            base = check_path(path, references)
        except KnowledgeInvalid as exc:
            failed += 1
            print(exc)
            continue
        print(f"{path}: ok ({len(base.entries)} entries in {base.files} files, version {base.version})")
    return 1 if failed else 0


def cmd_token_new(args: argparse.Namespace) -> int:
    if args.role == "seat" and not args.seat:
        print("a seat token needs --seat <seat id>", file=sys.stderr)
        return EXIT_CONFIG
    token = new_token()
    print(f"token (give it to {args.name}; it is not stored anywhere): {token}")
    print("add to config.yaml under http.tokens:")
    seat = f', seat: "{args.seat}"' if args.seat else ""
    seat += f", platform: {args.platform}" if args.platform else ""
    print(f"  - {{name: {args.name}, role: {args.role}{seat}, sha256: {token_sha256(token)}}}")
    return 0


def cmd_prompts_build(args: argparse.Namespace) -> int:
    from ivr.dialplan.directory import load_platform_dialplan
    from ivr.prompts import build_prompts, build_sound_set
    from telephony.dialplan_names import ivr_prompts_dir, prompt_path
    from telephony.say_zh import zh_sounds_dir

    config = _load(args.config)
    plan = load_platform_dialplan(config.dialplan_path(), config.paths.prompts_dir, config.platform.id)
    for texts, out in (
        (config.prompts.model_dump(), prompt_path(config.paths.runtime_dir, "fallback").parent),
        (plan.spec.prompts, ivr_prompts_dir(config.paths.runtime_dir)),
    ):
        built = build_prompts(texts, config.paths.prompts_dir, out)
        print(f"prompts in {out}: rebuilt {', '.join(built) or 'none (all up to date)'}")
    sounds = zh_sounds_dir(config.paths.runtime_dir)  # digits, letters, times in Mandarin
    built = build_sound_set(config.paths.prompts_dir / "zh", sounds)
    print(f"sound set in {sounds}: rebuilt {', '.join(built) or 'none (all up to date)'}")
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    import tempfile

    config = _load(args.config)
    for tool in ("sipp", "sox"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (make deps)", file=sys.stderr)
            return 1
    template = Path(__file__).resolve().parent.parent / "telephony" / "sipp" / "caller.xml"
    target = f"{config.sip.bind_host}:{config.sip.port}"
    with tempfile.TemporaryDirectory(prefix="hotline-call-") as tmp:
        # half a minute of "speech" then eight seconds of silence, over and over: wherever the
        # message starts, the caller speaks, and a silence ends it (Asterisk counts silence only
        # after it has heard sound)
        audio = Path(tmp) / "caller.wav"
        subprocess.run(
            [
                "sox",
                "-n",
                "-r",
                "8000",
                "-c",
                "1",
                "-e",
                "u-law",
                str(audio),
                "synth",
                "30",
                "sine",
                "440",
                "pad",
                "0",
                "8",
            ],
            check=True,
        )
        scenario = Path(tmp) / "caller.xml"
        scenario.write_text(template.read_text(encoding="utf-8").replace("AUDIO_FILE", str(audio)), encoding="utf-8")
        command = [
            "sipp", target, "-sf", str(scenario), "-s", args.number, "-m", "1", "-l", "1",
            "-i", "127.0.0.1", "-p", "0", "-mi", "127.0.0.1", "-key", "caller", args.caller,
            "-timeout", f"{int(args.listen_s)}s", "-timeout_error", "-nostdin",
        ]  # fmt: skip
        print(f"calling {args.number} at {target} as {args.caller}: with no key pressed and no seat logged in,")
        print("the IVR takes the caller to voicemail, who leaves a message; it becomes a ticket (about a minute)…")
        result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp, check=False)
    print(
        "call completed: see /api/v1/calls"
        if result.returncode == 0
        else f"call failed (sipp exit {result.returncode})"
    )
    return 0 if result.returncode == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline12345", description="12345 government service hotline backend")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", default="config.yaml", help="path to config.yaml (default: ./config.yaml)")
        return p

    with_config(sub.add_parser("run", help="run the controller (Asterisk and Redis already running)")).set_defaults(
        func=cmd_run
    )
    stack = with_config(sub.add_parser("stack", help="run Redis, Asterisk and the controllers together (make run)"))
    stack.add_argument(
        "--platforms",
        default="",
        help="platforms to run, linked by SIP trunks on loopback: e.g. kunming,province,dali, or all "
        "(default: the config's platform only)",
    )
    stack.set_defaults(func=cmd_stack)

    with_config(
        sub.add_parser("asr-worker", help="transcribe callers' messages into tickets (any number, any host)")
    ).set_defaults(func=cmd_asr_worker)
    transcribe = with_config(sub.add_parser("transcribe", help="transcribe WAV files with the configured model"))
    transcribe.add_argument("files", nargs="+", help="WAV files (8 kHz or more, 16-bit mono)")
    transcribe.set_defaults(func=cmd_transcribe)

    asterisk = sub.add_parser("asterisk", help="Asterisk configuration").add_subparsers(
        dest="asterisk_command", required=True
    )
    render = with_config(asterisk.add_parser("render", help="render the Asterisk config files for this platform"))
    render.add_argument("--out", required=True, help="folder to write the .conf files into")
    render.set_defaults(func=cmd_render)

    config = sub.add_parser("config", help="config.yaml").add_subparsers(dest="config_command", required=True)
    with_config(config.add_parser("check", help="validate config.yaml")).set_defaults(func=cmd_config_check)

    dialplan = sub.add_parser("dialplan", help="YAML dialplans").add_subparsers(dest="dialplan_command", required=True)
    check = dialplan.add_parser("check", help="validate dialplan files (default: dialplans/*.yaml)")
    check.add_argument("paths", nargs="*", help="dialplan files, or folders of them (each with its directory.yaml)")
    check.add_argument("--prompts-dir", default="prompts", help="recorded prompts that count as existing")
    check.set_defaults(func=cmd_dialplan_check)

    units = sub.add_parser("units", help="the units directory and the desk codes").add_subparsers(
        dest="units_command", required=True
    )
    units_check = units.add_parser("check", help="validate units and codes files (default: ./directory)")
    units_check.add_argument("paths", nargs="*", help="a directory (holding units/ and codes/) or single files")
    units_check.set_defaults(func=cmd_units_check)

    knowledge = sub.add_parser("knowledge", help="the knowledge base (知识库)").add_subparsers(
        dest="knowledge_command", required=True
    )
    kcheck = knowledge.add_parser("check", help="validate knowledge files (default: ./knowledge_base)")
    kcheck.add_argument("paths", nargs="*", help="a knowledge base folder, a platform's folder or files")
    kcheck.add_argument(
        "--units-dir", type=Path, default=Path("directory"), help="the units directory entries are checked against"
    )
    kcheck.set_defaults(func=cmd_knowledge_check)

    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="token_command", required=True)
    new = token.add_parser("new", help="make a new API token")
    new.add_argument("--role", choices=("seat", "supervisor", "admin"), required=True)
    new.add_argument("--name", required=True)
    new.add_argument("--seat", help="for role seat: the seat id this token may act as")
    new.add_argument("--platform", help="the platform the token belongs to (default: the config's own)")
    new.set_defaults(func=cmd_token_new)

    prompts = sub.add_parser("prompts", help="prompt files").add_subparsers(dest="prompts_command", required=True)
    with_config(prompts.add_parser("build", help="synthesise or convert the prompts")).set_defaults(
        func=cmd_prompts_build
    )

    call = with_config(sub.add_parser("call", help="place a test call with SIPp"))
    call.add_argument("--number", default="12345")
    call.add_argument("--caller", default="13800138000")
    call.add_argument(
        "--listen-s", type=float, default=240.0, help="give up after this long if the IVR has not hung up"
    )
    call.set_defaults(func=cmd_call)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from common.private_files import PRIVATE_UMASK

    args = build_parser().parse_args(argv)
    # what the controller and the Asterisk and Redis it starts write (callers' messages and
    # sidecars, recordings, secrets, state) is this user's alone: files 0600, folders 0700
    os.umask(PRIVATE_UMASK)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"hotline12345: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DialplanInvalid as exc:
        print(f"hotline12345: the dialplan cannot be used:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DeskFilesInvalid as exc:
        print(f"hotline12345: the units directory or desk codes cannot be used:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
