"""Study search over the regions' consolidated stores: the one query area
behind the API (``sta.service.routers``), the CLI (``sta search``) and the
benchmark.

- ``filters``: what may be asked (``StudyFilters``) and its normal form;
- ``index``: one region's filter columns in memory (numpy) and the keyword lookup;
- ``stores``: the stores attached read-only, reloaded when a linking run replaces one;
- ``search``: studies with facets and paging, patient timelines, study details, thumbnails;
- ``patients``: patients by patient-level filters; ``partners``: display names (partners, label concepts);
- ``shaping``: a store row as the API's result.
"""

from sta.service.search.filters import FACETS, MAX_PAGE_SIZE, MAX_WINDOW, SORTS, StudyFilters, keywords
from sta.service.search.search import (
    linked_patients,
    patient_timeline,
    search_studies,
    study_detail,
    thumbnail_path,
)
from sta.service.search.shaping import excerpt
from sta.service.search.stores import STORE_NAME, StoreSet

__all__ = [
    "FACETS", "MAX_PAGE_SIZE", "MAX_WINDOW", "SORTS", "STORE_NAME", "StoreSet", "StudyFilters",
    "excerpt", "keywords", "linked_patients", "patient_timeline", "search_studies", "study_detail",
    "thumbnail_path",
]
