"""``outbox suppressions list|add|remove``: SMTP2GO's suppression list and outbox's local
set side by side, and changed together.

Producers refuse what is in the local set (``core/store/suppressions.py``); SMTP2GO
refuses what is on the account's list. Beat's sync copies the account's list into the
set but never takes anything out of it, and webhooks suppress hard bounces and
complaints locally only, so the two drift: ``list`` says where each entry is. ``add``
and ``remove`` change SMTP2GO first, then the set: when SMTP2GO refuses, the set is left
as it was (the next sync would bring a removed entry back anyway). A removal is
remembered, so a sync whose read began before it cannot put the address back. Every
request is made as beat's reads are (:func:`~outbox.worker.account_api.api_call`): in a slot
of the shared rate limit, a 429 cooling the fleet down, and never to an endpoint
SMTP2GO refused the key within the hour unless ``--recheck`` says the permission has
been added. The key needs the permission of each endpoint it calls
(``/suppression/view``, ``/suppression/add``, ``/suppression/remove``).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import click

from outbox.cli.output import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    columns,
    fail,
    print_json,
    redacted_url,
    table,
    when,
)

if TYPE_CHECKING:
    from outbox.core.smtp2go.answers import APIResult
    from outbox.core.smtp2go.endpoints import Endpoint
    from outbox.core.smtp2go.models import WireModel
    from outbox.worker.runtime import Runtime

__all__ = ["Where", "suppressions"]

#: Longest a command waits for a slot of the shared rate limit.
SLOT_WAIT = 10.0
#: Pages of ``suppression/view`` that ``list`` reads at most.
LIST_PAGES = 1000


class Where(StrEnum):
    """Where a suppression is."""

    #: On SMTP2GO's list and in the local set: in step.
    BOTH = "both"
    #: On SMTP2GO's list only: the next sync adds it locally.
    SMTP2GO = "smtp2go"
    #: In the local set only: a webhook's bounce or complaint, or lifted at SMTP2GO
    #: outside outbox.
    LOCAL = "local"


#: ``--recheck``: ask SMTP2GO even for an endpoint it refused the key within the hour.
_recheck = click.option(
    "--recheck",
    is_flag=True,
    help="Ask SMTP2GO even if it refused the key this call within the hour (once the "
    "permission is added; an answer turns the feature back on for the fleet).",
)


@click.group("suppressions")
def suppressions() -> None:
    """SMTP2GO's suppression list and outbox's local set: list, add, remove."""


def _api(
    rt: Runtime,
    endpoint: Endpoint[APIResult],
    body: WireModel,
    as_json: bool,
    done: list[dict[str, Any]] | None = None,
    *,
    recheck: bool = False,
) -> APIResult:
    """One request as beat's jobs make it (:func:`~outbox.worker.account_api.api_call`: a slot
    of the shared limit, a refusal known to the fleet honoured unless ``recheck``, a 429
    cooling everyone down); a refusal becomes one clear line and the exit code of its
    cause (``done``: what was changed before it, for ``--json``)."""
    from outbox.core.errors import BadRequestError, SMTP2GOError, UnauthorizedError
    from outbox.worker.account_api import Denied, NoSlot, api_call

    path = endpoint.path
    extra: dict[str, Any] = {} if done is None else {"done": done}
    _ = rt.client  # a missing or malformed key is a bad setting, said by the group
    try:
        return api_call(rt, endpoint, body, purpose="cli", max_wait=SLOT_WAIT, recheck=recheck)
    except NoSlot as busy:
        fail(
            f"no slot of the shared rate limit for {path} within {SLOT_WAIT:.0f} s (the "
            f"workers are sending at the limit, or cooling down after a 429): try again in "
            f"{busy.wait:.0f} s",
            EXIT_UNREACHABLE,
            as_json=as_json,
            endpoint=path,
            **extra,
        )
    except Denied as denied:
        if denied.cause is not None:
            why = f"({denied.cause})"
        else:
            # not asked: an error answer counts towards the IP's timeout, as a 429 does
            until = when(denied.until) if denied.until else "within the hour"
            why = (
                f"(refused to the fleet; asked again after {until}, or now with --recheck "
                "once the permission is added)"
            )
        fail(
            f"the API key may not call {path}: add /{path} to the key's permissions in "
            f"SMTP2GO {why}",
            EXIT_USAGE,
            as_json=as_json,
            endpoint=path,
            permission=f"/{path}",
            **extra,
        )
    except UnauthorizedError as err:
        fail(
            f"SMTP2GO refused the API key (SMTP2GO_API_KEY): {err}",
            EXIT_USAGE,
            as_json=as_json,
            endpoint=path,
            **extra,
        )
    except BadRequestError as err:
        fail(f"SMTP2GO refused {path}: {err}", EXIT_USAGE, as_json=as_json, endpoint=path, **extra)
    except SMTP2GOError as err:  # a 429 has cooled the fleet down, as a send's does
        fail(
            f"SMTP2GO at {redacted_url(rt.settings.base_url)} (SMTP2GO_BASE_URL) could not "
            f"answer {path}: {err}",
            EXIT_UNREACHABLE,
            as_json=as_json,
            endpoint=path,
            **extra,
        )


def _viewer(rt: Runtime, as_json: bool, recheck: bool) -> Callable[[Any], APIResult]:
    from outbox.core.smtp2go.endpoints import SUPPRESSION_VIEW

    return lambda query: _api(rt, SUPPRESSION_VIEW, query, as_json, recheck=recheck)


def merged(rows: list[dict[str, Any]], local: set[str]) -> list[dict[str, Any]]:
    """SMTP2GO's rows (one per address and reason) and the local set as one entry per
    address, each saying where it is."""
    from outbox.core.smtp2go.checks import address_key
    from outbox.worker.account_api import row_reason

    remote: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        remote.setdefault(address_key(str(row["email_address"])), []).append(row)
    entries = []
    for address in sorted(remote.keys() | local):
        found = remote.get(address, [])
        where = Where.LOCAL if not found else Where.BOTH if address in local else Where.SMTP2GO
        times = sorted(str(r["timestamp"]) for r in found if r.get("timestamp"))
        entries.append(
            {
                "address": address,
                "where": where.value,
                "reasons": sorted({row_reason(r) for r in found} - {""}),
                "description": next(
                    (str(r["block_description"]) for r in found if r.get("block_description")),
                    "",
                ),
                "added": times[0] if times else None,
            }
        )
    return entries


@suppressions.command("list")
@click.option(
    "--search",
    metavar="TEXT",
    help="Only addresses containing TEXT (SMTP2GO's wildcard filter; the same locally).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@_recheck
def list_command(search: str | None, as_json: bool, recheck: bool) -> None:
    """Every suppression, at SMTP2GO and in outbox's local set, and where each one is."""
    from outbox.core.smtp2go.models import SuppressionView
    from outbox.worker.account_api import read_suppressions
    from outbox.worker.runtime import get_runtime

    rt = get_runtime()
    query = SuppressionView(wildcard=search) if search else SuppressionView()
    rows, complete = read_suppressions(_viewer(rt, as_json, recheck), query, LIST_PAGES)
    local = rt.store.suppressions.members()
    if search:
        local = {a for a in local if search.strip().lower() in a}
    entries = merged(rows, local)
    counts = {w.value: sum(e["where"] == w.value for e in entries) for w in Where}
    erased = rt.store.suppressions.erased_count()
    if as_json:
        print_json(
            {"suppressions": entries, "counts": counts, "erased": erased, "complete": complete}
        )
        return
    if entries:
        click.echo(
            table(
                ["address", "where", "reasons", "added", "description"],
                [
                    [
                        e["address"],
                        _where(e["where"]),
                        ", ".join(e["reasons"]),
                        when(e["added"]),
                        e["description"],
                    ]
                    for e in entries
                ],
                width=columns(),
            )
        )
    click.echo(
        f"{len(entries)} suppression(s): {counts['both']} in both, {counts['smtp2go']} only "
        f"at SMTP2GO, {counts['local']} only local"
    )
    if counts["smtp2go"] or counts["local"]:
        click.echo(
            click.style("  drift: ", fg="yellow", bold=True)
            + "beat's sync adds SMTP2GO's entries locally; an entry only local (a webhook's "
            "bounce or complaint, or lifted at SMTP2GO) stays until `outbox suppressions "
            "add` or `remove` puts both sides in step"
        )
    if erased:
        click.echo(f"  and {erased} erased address(es), refused locally as keyed hashes only")
    if not complete:
        click.echo(
            click.style(f"  SMTP2GO's list goes on past {LIST_PAGES} pages", fg="yellow")
            + ": narrow it with --search"
        )


def _where(value: str) -> str:
    colour = {Where.BOTH.value: "green", Where.SMTP2GO.value: "yellow"}.get(value, "magenta")
    return click.style(value, fg=colour)


def _targets(addresses: tuple[str, ...], as_json: bool) -> list[str]:
    """Each address (or domain) as given, checked before anything is asked of SMTP2GO."""
    from outbox.core.smtp2go.checks import validate_domain_or_address

    targets = []
    for address in addresses:
        try:
            targets.append(validate_domain_or_address(address))
        except ValueError as exc:
            fail(
                f"email_address {address!r}: {exc}",
                EXIT_USAGE,
                as_json=as_json,
                field="email_address",
            )
    return list(dict.fromkeys(targets))


@suppressions.command("add")
@click.argument("addresses", nargs=-1, required=True, metavar="ADDRESS...")
@click.option("--reason", metavar="TEXT", help="Why, kept at SMTP2GO (block_description).")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@_recheck
def add_command(
    addresses: tuple[str, ...], reason: str | None, as_json: bool, recheck: bool
) -> None:
    """Suppress addresses (or whole domains) at SMTP2GO and in outbox's local set."""
    from outbox.core.smtp2go.checks import address_key
    from outbox.core.smtp2go.endpoints import SUPPRESSION_ADD
    from outbox.core.smtp2go.models import SuppressionAdd
    from outbox.worker.runtime import get_runtime

    targets = _targets(addresses, as_json)
    rt = get_runtime()
    done: list[dict[str, Any]] = []
    for target in targets:
        body = SuppressionAdd(email_address=target, block_description=reason)
        _api(rt, SUPPRESSION_ADD, body, as_json, done, recheck=recheck)
        key = address_key(target)
        new = bool(rt.store.suppressions.add(key))
        done.append({"address": key, "smtp2go": True, "local_new": new})
        if not as_json:
            click.echo(f"suppressed {key} at SMTP2GO and locally")
    if as_json:
        print_json({"added": done})


@suppressions.command("remove")
@click.argument("addresses", nargs=-1, required=True, metavar="ADDRESS...")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@_recheck
def remove_command(addresses: tuple[str, ...], as_json: bool, recheck: bool) -> None:
    """Lift the suppression of addresses (or domains) at SMTP2GO and locally: they may be
    sent to again (unlike `outbox erase`, which keeps an address refused). An erased
    address stays erased: a sync never stores it readable."""
    from outbox.core.smtp2go.checks import address_key
    from outbox.worker.account_api import held_for, lift_at_smtp2go
    from outbox.worker.runtime import get_runtime

    targets = _targets(addresses, as_json)
    rt = get_runtime()
    done: list[dict[str, Any]] = []

    def call(rt: Runtime, endpoint: Endpoint[APIResult], body: WireModel) -> APIResult:
        return _api(rt, endpoint, body, as_json, done, recheck=recheck)

    for target in targets:
        key = address_key(target)
        reasons = held_for(rt, target, call)
        lift_at_smtp2go(rt, target, reasons, call)
        # Locally after SMTP2GO, and remembered: a sync reading the list as it was
        # before the removal leaves the address out.
        local = bool(rt.store.suppressions.remove(key))
        done.append({"address": key, "smtp2go": reasons, "local": local})
        if not as_json:
            click.echo(_removed_line(key, reasons, local))
    if as_json:
        print_json({"removed": done})
    if not any(d["smtp2go"] or d["local"] for d in done):
        fail("not suppressed at SMTP2GO nor locally: nothing to remove", EXIT_FAILED)


def _removed_line(address: str, reasons: list[str], local: bool) -> str:
    if not reasons and not local:
        return f"{address} was not suppressed"
    sides = [f"at SMTP2GO ({', '.join(reasons)})"] if reasons else []
    sides += ["locally"] if local else []
    return f"lifted {address}: {' and '.join(sides)}"
