"""Compatibility name: the search moved to ``sta.service.search`` (split by
concern: filters, index, stores, search, shaping). New code imports from
there; this module only re-exports it for callers not yet updated."""

from sta.service.search import *  # noqa: F401,F403
from sta.service.search import __all__  # noqa: F401
