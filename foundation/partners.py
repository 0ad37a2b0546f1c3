"""Partner configuration: one YAML file per partner under ``include/partners``.

Partners are data. A file is validated when it is loaded (its profile too) so
that a typo fails the DAG factory with a message naming the file and the
field, instead of a half-built pipeline. Resolve a partner once per task and
pass the :class:`PartnerConfig` down; paths come from :mod:`foundation.paths`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from foundation.paths import PARTNERS_DIR, PartnerRoot, data_root, partners_dir
from foundation.profiles import ProfileError, check_jurisdiction, default_profile, load_profile

# ISO 3166 alpha-2 codes of the countries STA buys from; the region of a
# partner is its country (one storage root, worker pool and store per region).
REGIONS = {"co", "br", "ar", "ec", "cl", "mx", "pe", "uy", "us"}

_ID_RE = re.compile(r"^[a-z][a-z0-9_]{1,62}$")


class ConfigError(ValueError):
    """A partner or profile file that cannot be used, with the file named."""


class SourceConfig(BaseModel):
    """Where a partner's files come from.

    ``path`` (folder sources) is resolved against the data root when relative,
    so the same YAML works on a laptop and in a deployment.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["folder", "sftp", "s3", "gdrive", "dropbox"]
    path: str | None = None
    conn_id: str | None = None
    bucket: str | None = None
    prefix: str | None = None
    folder_id: str | None = None

    @field_validator("path")
    @classmethod
    def _no_parent_refs(cls, v: str | None) -> str | None:
        if v is not None and ".." in Path(v).parts:
            raise ValueError("source path must not contain '..'")
        return v


class IdentityConfig(BaseModel):
    """Where a partner's files carry the patient's national identifier.

    The patient token is computed from (country, document type, number); each
    hospital stores those differently, so the partner file says which issuers
    in PatientID / OtherPatientIDsSequence are national documents.
    """

    model_config = ConfigDict(extra="forbid")

    national_id_issuers: dict[str, str] = Field(
        default_factory=dict,
        description="IssuerOfPatientID value -> document type, e.g. {'RNEC-CC': 'CC'}",
    )


class ExecutionConfig(BaseModel):
    """How much of the cluster a partner gets, sized to its workers.

    ``workers`` Celery workers consume the partner's queue, each with
    ``slots_per_worker`` task slots; the partner's pool and the per-run cap on
    mapped de-identification tasks both equal ``concurrency``, so adding
    workers adds throughput. ``on_premise`` partners run pull and
    de-identification on an Airflow Edge worker inside the hospital.
    """

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(default=1, ge=1, le=256)
    slots_per_worker: int = Field(default=4, ge=1, le=64)
    on_premise: bool = False

    @property
    def concurrency(self) -> int:
        return self.workers * self.slots_per_worker


class ReviewPolicy(BaseModel):
    """Which studies of a run a researcher must see before it is published (issue 11.4).

    A run whose policy selects nothing publishes without review. A run with a
    selection waits for an Approve/Reject in Airflow (Required Actions); no
    answer within ``timeout_hours`` counts as Reject: nothing is published
    unless someone approved it.
    """

    model_config = ConfigDict(extra="forbid")

    sample_percent: float = Field(default=0.0, ge=0, le=100, description="share of studies drawn at random")
    new_modality: bool = Field(default=False, description="every study of a modality this partner never published")
    new_manufacturer: bool = Field(default=False, description="every study of a manufacturer never published")
    new_protocol: bool = Field(default=False, description="every study whose description was never published")
    redacted_pixels: bool = Field(default=False, description="every file whose burned-in text was redacted")
    low_confidence_reports: bool = Field(default=False, description="every report read by OCR below the threshold")
    confidence_threshold: float = Field(default=80.0, ge=0, le=100, description="mean OCR word confidence")
    max_items: int = Field(default=20, ge=1, le=500, description="studies shown in one review task")
    timeout_hours: float = Field(default=72.0, gt=0, le=24 * 30)
    reviewers: list[str] = Field(default_factory=list, description="Airflow user names allowed to answer")

    @property
    def enabled(self) -> bool:
        return bool(self.sample_percent or self.new_modality or self.new_manufacturer or self.new_protocol
                    or self.redacted_pixels or self.low_confidence_reports)


class PartnerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    country: str
    region: str
    source: SourceConfig
    schedule: str | None = "@daily"
    profile: str = "latam"
    profile_overrides: dict[str, Any] = Field(default_factory=dict)
    report_languages: list[Literal["es", "pt", "en"]] = Field(default_factory=lambda: ["es"])
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    batch_size: int = Field(default=200, ge=1, le=10_000)
    owner: str = "data-engineering"
    retries: int = Field(default=2, ge=0, le=10)
    notify: list[str] = Field(default_factory=list)
    timezone: str = Field(default="UTC", description="IANA zone the schedule is read in, e.g. America/Bogota")
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    review: ReviewPolicy = Field(default_factory=ReviewPolicy)
    # Reactive syncs (issue 16.2): a run when new files have stopped changing at the source, not on the clock.
    reactive: bool = False
    reactive_poll_seconds: float = Field(default=10, ge=1, le=3600)
    reactive_stable_seconds: float = Field(default=30, ge=0, le=86_400)
    # Quarantine (issue 11.5): how long refused originals are kept, and whether at all.
    quarantine_retention_days: int = Field(default=30, ge=0, le=3650)
    quarantine_originals: Literal["encrypted", "delete"] = "encrypted"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as America/Bogota)") from exc
        return v

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError("id must be lowercase letters, digits and '_', starting with a letter")
        return v

    @field_validator("country", "region")
    @classmethod
    def _known_region(cls, v: str) -> str:
        if v not in REGIONS:
            raise ValueError(f"unknown region/country {v!r}; known: {sorted(REGIONS)}")
        return v

    @property
    def queue(self) -> str:
        return f"partner-{self.id}"

    @property
    def pool(self) -> str:
        return f"partner-{self.id}"

    @property
    def dag_id(self) -> str:
        return f"ingest_{self.id}"

    def root(self, base: Path | None = None) -> "PartnerRoot":
        return PartnerRoot(base or data_root(), self.region, self.id)

    def source_path(self, base: Path | None = None) -> Path:
        if self.source.type != "folder" or not self.source.path:
            raise ConfigError(f"partner {self.id}: source is {self.source.type!r}, not a folder")
        p = Path(os.path.expandvars(self.source.path))
        return p if p.is_absolute() else (base or data_root()) / p


def load_partner(path: Path) -> PartnerConfig:
    """Load and validate one partner file; the error names the file and field."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read partner file: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a partner file must be a mapping, got {type(raw).__name__}")
    try:
        cfg = PartnerConfig.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: invalid partner config: {details}") from exc
    if cfg.id != Path(path).stem:
        raise ConfigError(f"{path}: id {cfg.id!r} must match the file name {Path(path).stem!r}")
    if "profile" not in raw:  # the jurisdiction's base profile (deid-core, issue 16.3)
        cfg.profile = default_profile(cfg.country)
    try:
        profile = load_profile(cfg.profile, cfg.profile_overrides, where=str(path))
        check_jurisdiction(cfg.country, profile, str(path), cfg.profile_overrides)
    except ProfileError as exc:
        raise ConfigError(str(exc)) from exc
    return cfg


def load_partners(directory: Path | None = None) -> list[PartnerConfig]:
    directory = Path(directory or partners_dir())
    return [load_partner(p) for p in sorted(directory.glob("*.yaml"))]


def load_partners_checked(directory: Path | None = None) -> tuple[list[PartnerConfig], dict[str, str]]:
    """Every partner file that loads, and for each one that doesn't, its error (file and field).

    For the DAG factories: one malformed file must break only its own partner;
    the errors are raised by ``dags/partner_config_errors.py`` so Airflow shows
    them as that file's import error.
    """
    good: list[PartnerConfig] = []
    errors: dict[str, str] = {}
    for path in sorted(Path(directory or partners_dir()).glob("*.yaml")):
        try:
            good.append(load_partner(path))
        except ConfigError as exc:
            errors[str(path)] = str(exc)
    return good, errors


def get_partner(partner_id: str, directory: Path | None = None) -> PartnerConfig:
    directory = Path(directory or partners_dir())
    path = directory / f"{partner_id}.yaml"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(directory.glob("*.yaml")))
        raise ConfigError(f"no partner {partner_id!r} in {directory} (known: {known})")
    return load_partner(path)


__all__ = ["PARTNERS_DIR", "ConfigError", "IdentityConfig", "PartnerConfig", "SourceConfig", "get_partner",
           "load_partner", "load_partners", "load_partners_checked"]
