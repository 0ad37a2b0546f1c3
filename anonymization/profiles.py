"""Moved to :mod:`foundation.profiles` (profiles are configuration, read by every layer)."""

from foundation.profiles import *  # noqa: F401,F403
from foundation.profiles import (  # noqa: F401 - names used by anonymization modules
    OPTION_CODES,
    PROFILES_DIR,
    Options,
    PixelMode,
    PixelPolicy,
    Profile,
    ProfileError,
    SafePrivate,
    available_profiles,
    load_profile,
    profiles_dir,
)
