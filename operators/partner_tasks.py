"""Airflow tasks of a partner DAG: each resolves its partner once and calls one stage of ``pipeline/``.

TaskFlow functions, so the DAG factory can fan out with ``.expand()`` over the
batch ids that ``classify`` returns. The library raises plain exceptions; a
verdict (the gate's refusal, an unbalanced ledger) becomes
``AirflowFailException`` so Airflow doesn't retry it.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Asset, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

log = logging.getLogger("sta.run")


def _quiet_libraries() -> None:
    """Task logs say what happened to each file, not what a library registered (GX: 214 of 227 lines)."""
    for name in ("great_expectations", "presidio-analyzer", "presidio_analyzer", "presidio-image-redactor",
                 "pytesseract", "PIL", "urllib3", "botocore", "paramiko"):
        logging.getLogger(name).setLevel(logging.WARNING)


_quiet_libraries()


def published_asset(region: str, partner_id: str) -> Asset:
    """Emitted when a partner publishes; the region's linking DAG is scheduled on it."""
    return Asset(name=f"published_{partner_id}", uri=f"sta://{region}/{partner_id}/parquet")


def airflow_connections(conn_id: str) -> Any:
    """Resolve a partner's source credentials from Airflow Connections / secrets backend."""
    from airflow.sdk import BaseHook

    from transforms.sources.base import ConnectionInfo

    return ConnectionInfo.from_airflow(BaseHook.get_connection(conn_id))


def _ctx(partner_id: str, run_id: str | None) -> Any:
    """The partner's YAML read and validated once for this task."""
    from pipeline.context import RunContext

    return RunContext.resolve(partner_id, run_id or "manual")


def _verdict(fn, *args: Any) -> Any:  # noqa: ANN001
    """Run a stage; a checkpoint's or verifier's verdict fails the task without retries (not an accident)."""
    from expectations.boundaries import CheckpointFailed

    try:
        return fn(*args)
    except CheckpointFailed as exc:
        raise AirflowFailException(str(exc)) from exc


@task
def pull(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    """**pull**: copy new and changed files from the partner's source into its landing area.

    Incremental (the partner's sync state), verified (size, the source's checksum), one
    pull per partner at a time (a lock: a manual run and a scheduled one never split the
    files). The Trigger form's options (re-pull everything, one sub-folder, since a date,
    dry run) apply here. Log: one line per file, by landing id. A missing connection or a
    bad partner file fails at once, without retries.
    """
    from foundation.partners import ConfigError
    from pipeline import pull as stage
    from transforms.pull import ConnectionNotFound, PullOptions

    try:
        options = PullOptions.from_params(get_current_context().get("params"))
        ctx = _ctx(partner_id, run_id)
        out = stage.run(ctx, airflow_connections, options)
    except (ConfigError, ConnectionNotFound, ValueError) as exc:
        raise AirflowFailException(f"misconfiguration, not retried: {exc}") from exc
    log.info("pull summary: fetched %d, rejected %d, failed %d%s", out["fetched"], out["rejected"], out["failed"],
             f", dry run would fetch {out['would_fetch']}" if options.dry_run else "")
    return out


@task
def classify(partner_id: str, _pulled: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """**classify**: sort the landed files into DICOM and report batches; quarantine the rest
    (empty, unsupported type) with a reason code. Log: one line per quarantined file."""
    from pipeline import classify as stage

    return _verdict(stage.run, _ctx(partner_id, run_id))


@task
def batches(classified: dict[str, Any], kind: str) -> list[int]:
    """The batch ids of one kind: what the next stage fans out over (Airflow maps only whole XComs)."""
    return list(classified[kind])


@task(max_active_tis_per_dagrun=4)
def deidentify(partner_id: str, batch: int, run_id: str | None = None) -> dict[str, Any]:
    """**deidentify[batch]**: one mapped task per batch of DICOM files: PS3.15 Annex E profile, keyed
    UIDs and tokens, shifted dates, burned-in text cleaned; the output is scanned for the input's
    identifying values. A file that fails any step is quarantined (reason code). Log: one line per file."""
    from pipeline import deidentify as stage

    return stage.run(_ctx(partner_id, run_id), batch)


@task(trigger_rule="none_failed")  # also when there was no DICOM batch (skipped mapped task)
def dicom_done(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    """**dicom_done**: the join of the de-identification batches (reports need every batch's identity map) and
    the Great Expectations checkpoint on the de-identified metadata (keyed UIDs, tokens, ages, paths). A
    failure stops the run here. Data Docs: ``reports/<run>/index.html`` in the partner's folder."""
    from pipeline.checkpoints import check

    return _verdict(check, _ctx(partner_id, run_id), "deid_metadata")


@task(max_active_tis_per_dagrun=4)
def verify_batch(partner_id: str, batch: int, run_id: str | None = None) -> dict[str, Any]:
    """**verify_batch[batch]**: one DICOM batch's outputs searched for their inputs' identifying values: header
    re-read by the other reader, every byte incl. pixel data, OCR of a sample of its pixels. Hits are acted on by
    ``verify``. Log: counts."""
    from pipeline import verify as stage

    return stage.run_batch(_ctx(partner_id, run_id), batch)


@task(trigger_rule="none_failed")  # also when a run has no reports (skipped mapped task)
def verify(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    """**verify**: every output searched again for its input's identifying values: DICOM re-read by the other
    reader (values and every byte, pixel data included), OCR of a sample of pixels per batch, report text,
    per-file rows. A hit quarantines the file (``residual_phi_verify``). Writes the leak ledger (classes
    checked and outcome per file, never a value), then deletes the run's identity maps."""
    from pipeline import verify as stage

    return stage.run(_ctx(partner_id, run_id))


@task(max_active_tis_per_dagrun=4)
def reports(partner_id: str, batch: int, run_id: str | None = None) -> dict[str, Any]:
    """**reports[batch]**: extract text (PDF layer or OCR), link each report to its study by accession
    number, scrub identifying text, verify nothing known survived. Unlinked or unscrubbable reports are
    quarantined. Log: one line per file."""
    from pipeline import reports as stage

    return stage.run(_ctx(partner_id, run_id), batch)


@task(trigger_rule="none_failed")  # runs when a run has no reports (skipped mapped task)
def build_tables(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    """**build_tables**: the run's patients/studies/series/instances/reports/labels tables (Parquet in the
    run's work folder), nothing published yet."""
    from pipeline import tables as stage

    return _verdict(stage.run, _ctx(partner_id, run_id))


@task
def validate(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    """**validate**: the Great Expectations gate on the run's tables. A failure stops the run before
    anything is published (not retried: a verdict, not an accident)."""
    from pipeline import validate as stage

    try:
        return _verdict(stage.run, _ctx(partner_id, run_id))
    except stage.GateFailed as exc:
        raise AirflowFailException(str(exc)) from exc


@task
def review_prepare(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    """**review.prepare**: the studies the partner's review policy selects (random share, never-seen
    modality/manufacturer/protocol, redacted pixels, low-confidence OCR reports), rendered for a
    researcher: de-identified thumbnails with redaction boxes, scrubbed text. Nothing selected: no review."""
    from pipeline import review as stage

    return stage.prepare(_ctx(partner_id, run_id))


@task(trigger_rule="none_failed")  # also when the review was not required (skipped approval)
def review_apply(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    """**review.apply**: Approve publishes; Reject (or no answer before the timeout) quarantines every file of
    the run with the reviewer's reason and name (reason ``review_rejected``)."""
    from pipeline import review as stage

    answer = get_current_context()["ti"].xcom_pull(task_ids="review.approve")
    out = stage.apply(_ctx(partner_id, run_id), answer)
    log.info("review: %s", out.get("decision"))
    return out


def publish_task(region: str, partner_id: str):  # noqa: ANN201
    @task(task_id="publish", outlets=[published_asset(region, partner_id)])
    def publish(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
        """**publish**: move the de-identified DICOM, merge the tables into the partner's Parquet by primary
        key, write the run's ledger (published + quarantined + rejected = pulled, or nothing moves) and emit
        the partner's asset (its region's link DAG then runs). A run that pulled nothing is skipped here:
        no publication, no asset event. Log: the run's summary."""
        from pipeline import publish as stage
        from pipeline.context import fetched
        from pipeline.ledger import LedgerMismatch

        ctx = _ctx(partner_id, run_id)
        if not fetched(ctx.run):
            log.info("run summary: nothing new was pulled; nothing to publish (no asset event)")
            raise AirflowSkipException("empty run: nothing new was pulled")
        try:
            out = stage.run(ctx, airflow_connections)
        except LedgerMismatch as exc:
            raise AirflowFailException(str(exc)) from exc
        log.info("run summary: pulled %s, published %s, quarantined %s, rejected %s",
                 *(out.get(k) for k in ("pulled", "published", "quarantined", "rejected")))
        return out

    return publish


@task(trigger_rule="all_done")  # whatever failed upstream: identity maps must not outlive the run
def sweep_identity(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    """**sweep_identity**: delete this run's identity maps, after success or failure of any stage (the work
    folder of a failed run stays for the next run's repair; its identities do not). Also seals the
    quarantine so far (raw originals encrypted with the partner's key), whatever happened upstream."""
    from pipeline import cleanup as stage
    from transforms.quarantine_admin import seal

    ctx = _ctx(partner_id, run_id)
    out = stage.sweep(ctx)
    out["quarantine"] = seal(ctx.partner, quarantine_key(partner_id))
    return out


@task(trigger_rule="none_failed")  # also after an empty run's skipped publish
def cleanup(partner_id: str, run_id: str | None = None) -> dict[str, Any]:
    """**cleanup**: delete the landing copies and the run's work folder (identity maps included); seal the
    quarantine (originals encrypted with the partner's key, or deleted if its YAML says so)."""
    from pipeline import cleanup as stage
    from transforms.quarantine_admin import seal

    ctx = _ctx(partner_id, run_id)
    out = stage.run(ctx)
    out["quarantine"] = seal(ctx.partner, quarantine_key(partner_id))  # this run's and any earlier failed run's
    log.info("quarantine sealed: %s", out["quarantine"])
    return out


def quarantine_key(partner_id: str) -> bytes | None:
    """The partner's quarantine key from the Connection ``sta_quarantine_<id>`` (password, url-safe base64), if any.

    None: the library falls back to ``STA_QUARANTINE_KEY_<ID>`` or a key derived from the deployment key.
    """
    import base64

    from airflow.sdk import BaseHook

    try:
        secret = BaseHook.get_connection(f"sta_quarantine_{partner_id}").password
    except Exception:  # noqa: BLE001 - not configured: the library's fallback applies
        return None
    return base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4)) if secret else None
