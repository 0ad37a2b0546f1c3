"""Pydantic models of the API's responses (they make the OpenAPI spec)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StudyResult(BaseModel):
    study_uid: str
    patient_token: str = Field(description="32-hex keyed patient token, the same across partners and regions")
    region: str
    partner_id: str
    country: str | None = None
    modality: str | None = Field(None, description="primary modality of the study")
    modalities: list[str] = []
    body_region: str | None = None
    study_date: str | None = Field(None, description="shifted date (per-patient offset), ISO 8601")
    study_description: str | None = None
    age: int | None = Field(None, description="age at the study in years")
    sex: str | None = None
    manufacturer: str | None = None
    labels: list[str] = Field([], description="positive report labels (concept ids, e.g. 'pneumonia', 'birads_2')")
    label_certainties: list[str] = Field([], description="every label as 'concept:certainty'")
    characteristics: list[str] = Field([], description="characterization as 'field:value'")
    slice_thickness: float | None = Field(None, description="mm, when known")
    report_language: str | None = None
    report_text: str | None = None
    report_excerpt: str | None = None
    tags: dict[str, str | int | None] = Field({}, description="selected DICOM attributes by keyword")
    thumbnail_url: str | None = None


class SeriesItem(BaseModel):
    series_uid: str
    modality: str | None = None
    body_part: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    n_instances: int | None = None
    thumbnail_url: str | None = None


class StudyDetail(StudyResult):
    series: list[SeriesItem] = []


class SearchResponse(BaseModel):
    total: int = Field(description="studies matching every filter")
    page: int
    page_size: int
    regions: list[str] = Field(description="regions searched (the customer's entitlements)")
    results: list[StudyResult]
    facets: dict[str, dict[str, int]] = Field(
        description="per filter: value -> count, computed with every other filter applied"
    )


class PatientTimeline(BaseModel):
    patient_token: str
    sex: str | None = None
    birth_decade: int | None = None
    regions: list[str]
    partners: list[str]
    first_study_date: str | None = None
    last_study_date: str | None = None
    n_studies: int
    studies: list[StudyResult]


class PatientSummary(BaseModel):
    patient_token: str
    sex: str | None = None
    age: int | None = Field(None, description="age at the latest study")
    n_studies: int
    modalities: list[str]
    first_study_date: str | None = None
    last_study_date: str | None = None
    partners: list[str]
    regions: list[str]


class PatientList(BaseModel):
    total: int
    page: int
    page_size: int
    patients: list[PatientSummary]


class Me(BaseModel):
    customer: str
    plan: str
    regions: list[str] = Field(description="regions this key may search")
    max_page_size: int


class Problem(BaseModel):
    detail: str
