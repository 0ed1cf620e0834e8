"""The command line: ``teleconsult serve | migrate | token | demo``.

The server's modules (aiortc, SQLAlchemy, aiohttp) are imported by the commands that need them,
so that ``teleconsult token`` answers at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from config.issuers import ConfigurationError
from config.keys import with_shared_keys
from config.logging import configure_logging
from config.settings import Settings, load_settings
from rooms.identity import Identity, Role
from signaling.auth import issuer_from_settings, join_link_issuer

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiohttp import web

    from signaling.context import Services

logger = logging.getLogger("teleconsult")

DEMO_HOSPITAL = "demo-hospital"
#: Connections the kernel queues until the event loop accepts them (aiohttp's default is 128):
#: a burst of arrivals on a busy loop overflowed 128, and each dropped connection's client
#: waited for its SYN's retransmission (1 s, then 3 s, 7 s) - seconds added to a join.
LISTEN_BACKLOG = 1024

#: The demo's join links: each participant's name, with their role and link.
DemoLinks = dict[str, tuple[str, str]]


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    if settings.workers > 1 and settings.worker_port is None:
        return _serve_workers(settings, args)
    import uvloop
    from aiohttp import web

    from migrations.runner import upgrade
    from signaling.access_log import AccessLogger
    from signaling.app import create_app
    from signaling.workers import listening_sockets

    if settings.is_embedded_database:
        settings.prepare_data_dir()
        upgrade(settings.effective_database_url)
    settings = asyncio.run(with_shared_keys(settings))
    app = create_app(settings)
    logger.info(
        "serving",
        extra={
            "url": settings.base_url(),
            "node_url": settings.effective_node_url(),
            "database": settings.effective_database_url.split(":")[0],
        },
    )
    # A worker of `serve --workers` listens on the shared port and on its own.
    where: dict[str, Any] = (
        {"sock": listening_sockets(settings)}
        if settings.worker_port is not None
        else {"host": settings.host, "port": settings.port}
    )
    web.run_app(
        app,
        **where,
        # run_app calls `print` once every site listens: the moment to show the demo's links.
        print=_demo_when_started(app) if args.demo else None,
        access_log_class=AccessLogger,
        loop=uvloop.new_event_loop(),
        backlog=LISTEN_BACKLOG,
    )
    return 0


def _serve_workers(settings: Settings, args: argparse.Namespace) -> int:
    """Migrate once, make the shared keys once, then run the workers."""
    from migrations.runner import upgrade
    from signaling.workers import WorkerPool, check_cluster_settings

    if args.demo:
        raise ConfigurationError("--demo serves one process: leave out --workers")
    check_cluster_settings(settings)
    settings.prepare_data_dir()
    upgrade(settings.effective_database_url)
    # Made here, before any worker reads them, so that every worker has the same ones (the
    # cluster's keys, the clinical signing key among them, in the database).
    asyncio.run(with_shared_keys(settings))
    return WorkerPool(settings).run()


def _demo_when_started(app: web.Application) -> Callable[[str], None]:
    """Schedule a demo visit as ``app`` starts; a ``print`` for run_app that shows its links."""
    from signaling.context import SERVICES

    links: DemoLinks = {}

    async def schedule(app: web.Application) -> None:
        links.update(await schedule_demo(app[SERVICES]))

    def show_links(_: str) -> None:
        print(demo_banner(links, serving=True), flush=True)

    app.on_startup.append(schedule)
    return show_links


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from migrations.runner import upgrade

    settings.prepare_data_dir()
    upgrade(settings.effective_database_url)
    print("schema is up to date")
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    settings = asyncio.run(with_shared_keys(settings))
    issuer = join_link_issuer(settings) if args.consult else issuer_from_settings(settings)
    if issuer is None:
        print("no signing key: set TELECONSULT_JWT_PRIVATE_KEY_FILE", file=sys.stderr)
        return 2
    identity = Identity(
        args.sub, args.name or args.sub, Role(args.role), args.hospital, args.consult
    )
    print(issuer.mint(identity, args.ttl))
    return 0


async def schedule_demo(services: Services) -> DemoLinks:
    """Schedule a visit of Dr. Wang with the patient Li Hua at the demo hospital; their links."""
    from rooms.service import ConsultSpec, Invitee
    from signaling.api.consults import join_urls

    system = Identity("demo-his", "Demo HIS", Role.SERVICE, DEMO_HOSPITAL)
    consult = await services.consults.schedule(
        system,
        ConsultSpec(
            kind="visit",
            hospital=DEMO_HOSPITAL,
            title="Demo video visit",
            scheduled_at=datetime.now(UTC),
            host=Invitee("dr-wang", "Dr. Wang Fang", Role.DOCTOR),
            participants=[Invitee("patient-li", "Li Hua", Role.PATIENT)],
        ),
    )
    urls = join_urls(services, consult)
    if services.issuer is not None:
        # The admin's demo stands in for the hospital portal: staff links carry an identity token
        # in the fragment, which the page takes out of the address at once.
        for p in consult.participants:
            if "?token=" not in urls[p.id]:
                identity = Identity(p.sub, p.name, p.role, p.hospital)
                token = services.issuer.mint(identity, services.settings.join_token_ttl_seconds)
                urls[p.id] += f"#token={token}"
    return {p.name: (p.role.value, urls[p.id]) for p in consult.participants}


def demo_banner(links: DemoLinks, *, serving: bool) -> str:
    """The demo's links, framed; with how to stop the server when this process serves them."""
    rule = "=" * 72
    lines = [rule, "Demo visit scheduled. Open each link in its own browser window:", ""]
    lines += [f"  {role:<8} {name}: {url}" for name, (role, url) in links.items()]
    if serving:
        lines += ["", "The server runs until you press Ctrl+C."]
    return "\n".join([*lines, rule])


async def _create_demo(settings: Settings) -> DemoLinks:
    from signaling.app import build_services

    services = build_services(settings)
    try:
        return await schedule_demo(services)
    finally:
        await services.media.shutdown()
        await services.registry.close()
        await services.database.dispose()


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from migrations.runner import upgrade

    settings.prepare_data_dir()
    if settings.is_embedded_database:
        upgrade(settings.effective_database_url)
    settings = asyncio.run(with_shared_keys(settings))
    links = asyncio.run(_create_demo(settings))
    print(demo_banner(links, serving=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``teleconsult`` command."""
    parser = argparse.ArgumentParser(
        prog="teleconsult",
        description="Video consultation server. Every setting is a TELECONSULT_* variable.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (TELECONSULT_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (TELECONSULT_PORT)")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="also schedule a demo visit and print its join links once listening",
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="run this many nodes on this machine, sharing the port (TELECONSULT_WORKERS; "
        "more than one needs Redis and PostgreSQL: docs/cluster.md)",
    )
    serve.set_defaults(run=_serve)
    commands.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        run=_migrate
    )
    token = commands.add_parser("token", help="print a token signed with the configured key")
    token.add_argument("--sub", required=True)
    token.add_argument("--role", required=True, choices=[role.value for role in Role])
    token.add_argument("--hospital", required=True)
    token.add_argument("--name")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.add_argument(
        "--consult", help="mint a join link's token for this consult instead of an identity token"
    )
    token.set_defaults(run=_token)
    demo = commands.add_parser("demo", help="schedule a demo visit and print its join links")
    demo.add_argument("--host", help="host used in the printed links (TELECONSULT_HOST)")
    demo.add_argument("--port", type=int, help="port used in the printed links")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``teleconsult`` command."""
    args = build_parser().parse_args(argv)
    overrides = {
        key: value
        for key in ("host", "port", "workers")
        if (value := getattr(args, key, None)) is not None
    }
    try:
        settings = load_settings(**overrides)
    except ValidationError as exc:
        print(f"teleconsult: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        return int(args.run(settings, args))
    except ConfigurationError as exc:
        print(f"teleconsult: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
