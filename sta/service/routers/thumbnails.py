"""``/api/thumbnails/{region}/{series_uid}``: a series' thumbnail image.

Thumbnails are made by the pipeline from de-identified pixels
(``transforms.thumbnails``) and live in the partner's root; the path comes
from the store and is checked to stay inside that root.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse

from sta import query
from sta.service.auth import entitled_regions, require_customer
from sta.service.db import Customer

router = APIRouter(prefix="/api/thumbnails", tags=["thumbnails"])


@router.get(
    "/{region}/{series_uid}",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}, "image/webp": {}}}, 401: {}, 404: {}},
    summary="Thumbnail (PNG/WebP) of a series",
)
def thumbnail(
    region: str,
    series_uid: str,
    request: Request,
    customer: Customer = Depends(require_customer),
) -> FileResponse:
    if region not in entitled_regions(request, customer):
        raise HTTPException(404, "no such thumbnail in your regions")
    path = query.thumbnail_path(request.app.state.stores, region, series_uid)
    if path is None:
        raise HTTPException(404, "no thumbnail for this series")
    media = "image/webp" if path.suffix.lower() == ".webp" else "image/png"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})
