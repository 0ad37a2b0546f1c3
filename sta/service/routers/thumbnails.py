"""``/api/thumbnails/{region}/{series_uid}``: a series' thumbnail image.

Thumbnails are made by the pipeline from de-identified pixels
(``transforms.thumbnails``) and live in the partner's root; the path comes
from the store and is checked to stay inside that root. Every thumbnail
served is audited and metered against its partner.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from sta.service import search
from sta.service.deps import Audit, Regions, Stores

router = APIRouter(prefix="/api/thumbnails", tags=["thumbnails"])


@router.get(
    "/{region}/{series_uid}",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}, "image/webp": {}}}, 401: {}, 404: {}},
    summary="Thumbnail (PNG/WebP) of a series",
)
def thumbnail(region: str, series_uid: str, regions: Regions, stores: Stores, audit: Audit) -> FileResponse:
    audit.filters = {"region": region, "series_uid": series_uid}
    if region not in regions:
        raise HTTPException(404, "no such thumbnail in your regions")
    found = search.thumbnail_path(stores, region, series_uid)
    if found is None:
        raise HTTPException(404, "no thumbnail for this series")
    path, partner_id = found
    audit.result_count = 1
    audit.deliver("thumbnail", [{"region": region, "partner_id": partner_id}], ref=series_uid)
    media = "image/webp" if path.suffix.lower() == ".webp" else "image/png"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})
