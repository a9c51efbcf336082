"""Changing a source from chat: widening its audience (share) and deleting it. Only its uploader or an admin of
the workspace may; a source the channel cannot see is not found, as everywhere else."""

from __future__ import annotations

from dataclasses import dataclass

from agent.archival.audience import WORKSPACE
from agent.archival.catalog import Catalog
from agent.archival.sources import Sources
from agent.db.models import Source
from agent.errors import UserError


@dataclass(frozen=True)
class Actor:
    """Who asks, from where: the channel's scope and place, the person's platform id, whether they are an admin."""

    scope: str
    place: str
    user: str
    admin: bool = False


def _allowed(source: Source, actor: Actor, verb: str) -> None:
    if actor.admin or (source.uploader and source.uploader == actor.user):
        return
    who = "the person who uploaded it" if source.uploader else "whoever loaded it with the CLI"
    raise UserError(f"Only {who} or an admin of this workspace can {verb} `{source.name}`.")


def share(catalog: Catalog, actor: Actor, name: str) -> str:
    source = catalog.get(actor.scope, name, actor.place)
    if source.audience == WORKSPACE:
        return f"`{source.name}` is already visible to every channel of this workspace."
    _allowed(source, actor, "share")
    catalog.set_audience(int(source.id or 0), WORKSPACE)
    return (f"Shared `{source.name}`: every channel and DM of this workspace can now see it, `/attach` it and "
            "search it.")


def delete(sources: Sources, actor: Actor, name: str, confirmed: bool) -> str:
    source = sources.catalog.get(actor.scope, name, actor.place)
    _allowed(source, actor, "delete")
    summary = sources.catalog.summary(source)
    size = f"{summary.files} file(s), {summary.passages} passages"
    if not confirmed:
        return (f"This deletes `{source.name}` ({size}) for every channel that uses it, and cannot be undone. "
                f"To go ahead: `/sources delete {source.name} confirm`.")
    sources.delete(actor.scope, source.name)
    return f"Deleted `{source.name}` ({size})."
