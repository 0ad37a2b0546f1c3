"""The health-plan API's wire format (JSON over HTTP), defined here.

``POST {base}/v1/coverage`` with a ``CoverageRequest``; the answer is a
``CoverageResponse``. Authentication: ``Authorization: Bearer <token>`` when
the Airflow Connection has a password. The request carries no patient data:
the drug (ATC code and name), the diagnosis, the daily dose and duration, and
an opaque order reference.

    request  {"order_ref": "O7-000012", "atc": "J01CA04", "drug": "amoxicillin",
              "diagnosis": "J02.9", "daily_dose": 1500.0, "dose_unit": "mg", "duration_days": 7}
    response {"order_ref": "O7-000012", "covered": true, "plan_code": "POS-ANTIBIO",
              "requires_authorization": false, "reason": "listed in the plan (J01)"}
"""

from __future__ import annotations

from pydantic import BaseModel, Field

PATH = "/v1/coverage"


class CoverageRequest(BaseModel):
    order_ref: str
    atc: str | None = Field(None, description="ATC code; null for drugs outside the catalogue")
    drug: str
    diagnosis: str
    daily_dose: float
    dose_unit: str
    duration_days: float | None = None


class CoverageResponse(BaseModel):
    order_ref: str
    covered: bool
    plan_code: str | None = None
    requires_authorization: bool = False
    reason: str


def coverage_for(req: CoverageRequest, covered: dict[str, str]) -> CoverageResponse:
    """The reference behaviour (used by the test/demo server): longest ATC prefix listed wins."""
    for prefix in sorted(covered, key=len, reverse=True):
        if req.atc and req.atc.startswith(prefix):
            return CoverageResponse(order_ref=req.order_ref, covered=True, plan_code=covered[prefix],
                                    requires_authorization=(req.duration_days or 0) > 90,
                                    reason=f"listed in the plan ({prefix})")
    return CoverageResponse(order_ref=req.order_ref, covered=False, reason="not in the plan's formulary")
