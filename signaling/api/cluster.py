"""What a page may know of the cluster: the origins its consult may be followed to."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from signaling.api.declare import ApiRoutes
from signaling.context import services

routes = ApiRoutes("cluster")


class ClusterOut(BaseModel):
    """The cluster as a page of this origin sees it."""

    origins: list[str] = Field(
        description="origins (scheme://host[:port]) of the nodes a page of this origin may "
        "follow its consult to: the public URL's and TELECONSULT_CLUSTER_ORIGINS"
    )


@routes.get("/api/cluster", response=ClusterOut, description="the cluster's origins", bearer=False)
async def cluster_origins(request: web.Request) -> ClusterOut:
    """The origins a page loaded from this node may follow a join's redirect to (a redirect to
    any other origin is refused by the page)."""
    return ClusterOut(origins=services(request).settings.trusted_origins())
