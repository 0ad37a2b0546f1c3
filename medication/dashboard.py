"""Population trends over the order store (the seed's Athena/QuickSight dashboards).

Three views, each one SQL query over DuckDB and one plot (matplotlib SVG):
  dose_distribution   daily dose quantiles per drug and diagnosis group (past and checked orders)
  anomaly_rates       orders checked per month, with the share found anomalous or rejected
  prescribers         orders per prescriber, with their anomalies and rejections
Filters: drug (catalogue id or name key) and diagnosis group (ICD-10 category).
An order's verdict is its worst decision (rejected > anomaly > ok) over all the
stages it went through (CLI check, or the workflow's validate/history/population/review).
"""

from __future__ import annotations

import io
from typing import Any

from medication.store import OrderStore

# every order once: the loaded/recorded history and the checked orders (with their verdict)
ORDERS_SQL = """
WITH verdicts AS (
    SELECT order_id,
           CASE WHEN bool_or(verdict = 'rejected') THEN 'rejected'
                WHEN bool_or(verdict = 'anomaly') THEN 'anomaly' ELSE 'ok' END AS verdict,
           arg_max(drug_key, decided_at) FILTER (WHERE drug_key IS NOT NULL) AS drug_key,
           arg_max(dx_group, decided_at) FILTER (WHERE dx_group IS NOT NULL) AS dx_group,
           arg_max(daily_dose, decided_at) FILTER (WHERE daily_dose IS NOT NULL) AS daily_dose,
           arg_max(dose_unit, decided_at) FILTER (WHERE dose_unit IS NOT NULL) AS dose_unit,
           max(order_date) AS order_date, max(prescriber_id) AS prescriber_id
    FROM decisions GROUP BY order_id
)
SELECT order_id, drug_key, dx_group, daily_dose, dose_unit, order_date, prescriber_id, 'history' AS source,
       NULL AS verdict
FROM history WHERE valid AND order_id NOT IN (SELECT order_id FROM verdicts)
UNION ALL
SELECT order_id, drug_key, dx_group, daily_dose, dose_unit, order_date, prescriber_id, 'checked', verdict
FROM verdicts
"""


def _where(drug: str | None, dx: str | None, alias: str = "") -> tuple[str, list[Any]]:
    conds, params = [], []
    if drug:
        conds.append(f"{alias}drug_key = ?")
        params.append(drug)
    if dx:
        conds.append(f"{alias}dx_group = ?")
        params.append(dx.upper()[:3])
    return (" AND " + " AND ".join(conds)) if conds else "", params


def dose_distribution(store: OrderStore, drug: str | None = None, dx: str | None = None,
                      limit: int = 20) -> list[dict[str, Any]]:
    """Per drug, diagnosis group and unit: n, p10/median/p90 daily dose (history and checked orders that were ok)."""
    where, params = _where(drug, dx)
    sql = f"""
    SELECT drug_key, dx_group, dose_unit, count(*) AS n,
           quantile_cont(daily_dose, 0.1) AS p10, median(daily_dose) AS p50, quantile_cont(daily_dose, 0.9) AS p90,
           min(daily_dose) AS min, max(daily_dose) AS max
    FROM ({ORDERS_SQL}) o
    WHERE daily_dose > 0 AND coalesce(verdict, 'ok') = 'ok' {where}
    GROUP BY ALL ORDER BY n DESC, drug_key, dx_group LIMIT {int(limit)}"""
    return _rows(store, sql, params)


def anomaly_rates(store: OrderStore, drug: str | None = None, dx: str | None = None) -> list[dict[str, Any]]:
    """Per month of order date: checked orders, anomalies, rejections and the rate of each."""
    where, params = _where(drug, dx)
    sql = f"""
    SELECT strftime(date_trunc('month', order_date), '%Y-%m') AS month, count(*) AS checked,
           count(*) FILTER (WHERE verdict = 'anomaly') AS anomalies,
           count(*) FILTER (WHERE verdict = 'rejected') AS rejected,
           round(count(*) FILTER (WHERE verdict = 'anomaly') / count(*), 4) AS anomaly_rate,
           round(count(*) FILTER (WHERE verdict = 'rejected') / count(*), 4) AS rejection_rate
    FROM ({ORDERS_SQL}) o
    WHERE source = 'checked' AND order_date IS NOT NULL {where}
    GROUP BY ALL ORDER BY month"""
    return _rows(store, sql, params)


def prescribers(store: OrderStore, drug: str | None = None, dx: str | None = None) -> list[dict[str, Any]]:
    """Per prescriber: all orders (history + checked), checked ones, anomalies, rejections."""
    where, params = _where(drug, dx)
    sql = f"""
    SELECT coalesce(prescriber_id, '(unknown)') AS prescriber_id, count(*) AS orders,
           count(*) FILTER (WHERE source = 'checked') AS checked,
           count(*) FILTER (WHERE verdict = 'anomaly') AS anomalies,
           count(*) FILTER (WHERE verdict = 'rejected') AS rejected
    FROM ({ORDERS_SQL}) o WHERE TRUE {where}
    GROUP BY ALL ORDER BY orders DESC, prescriber_id"""
    return _rows(store, sql, params)


def doses_for_plot(store: OrderStore, drugs: list[str], dx: str | None = None) -> dict[str, list[float]]:
    where, params = _where(None, dx)
    marks = ", ".join("?" * len(drugs))
    sql = f"""SELECT drug_key, daily_dose FROM ({ORDERS_SQL}) o
              WHERE daily_dose > 0 AND coalesce(verdict, 'ok') = 'ok' AND drug_key IN ({marks}) {where}"""
    out: dict[str, list[float]] = {d: [] for d in drugs}
    for r in _rows(store, sql, [*drugs, *params]):
        out[r["drug_key"]].append(r["daily_dose"])
    return out


def _rows(store: OrderStore, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    with store.connect(read_only=True) as con:
        cur = con.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, (float(v) if hasattr(v, "as_integer_ratio") and not isinstance(v, int) else v
                                for v in row))) for row in cur.fetchall()]


# -- plots -----------------------------------------------------------------------------------------
def _svg(fig) -> str:  # noqa: ANN001
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _figure(w: float = 7.5, h: float = 3.6):  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(w, h))
    return fig, ax


def plot(store: OrderStore, name: str, drug: str | None = None, dx: str | None = None) -> str:
    """One of 'doses', 'anomalies', 'prescribers' as an SVG document."""
    if name == "doses":
        dist = dose_distribution(store, drug, dx, limit=12)
        drugs = list(dict.fromkeys(r["drug_key"] for r in dist))[:10]
        data = doses_for_plot(store, drugs, dx)
        fig, ax = _figure(7.5, max(2.5, 0.35 * len(drugs) + 1))
        if drugs:
            ax.boxplot([data[d] for d in drugs], orientation="horizontal", showfliers=True, widths=0.6)
            ax.set_yticks(range(1, len(drugs) + 1), [d.removeprefix("x:") for d in drugs])
            ax.set_xscale("log")
        ax.set_xlabel("daily dose (mg or IU; log scale)")
        ax.set_title("Daily dose distribution per drug" + (f" — {dx}" if dx else ""))
        return _svg(fig)
    if name == "anomalies":
        rows = anomaly_rates(store, drug, dx)
        fig, ax = _figure()
        months = [r["month"] for r in rows]
        ax.plot(months, [r["anomaly_rate"] * 100 for r in rows], marker="o", label="anomaly %")
        ax.plot(months, [r["rejection_rate"] * 100 for r in rows], marker="s", label="rejected %")
        ax.set_ylabel("% of checked orders")
        ax.set_title("Anomalies over time" + (f" — {drug}" if drug else "") + (f" — {dx}" if dx else ""))
        ax.legend()
        ax.tick_params(axis="x", rotation=45)
        return _svg(fig)
    if name == "prescribers":
        rows = prescribers(store, drug, dx)[:15]
        fig, ax = _figure()
        ids = [r["prescriber_id"] for r in rows]
        ax.bar(ids, [r["orders"] for r in rows], label="orders")
        ax.bar(ids, [r["anomalies"] + r["rejected"] for r in rows], label="anomalous or rejected")
        ax.set_title("Orders per prescriber")
        ax.legend()
        ax.tick_params(axis="x", rotation=45)
        return _svg(fig)
    raise ValueError(f"unknown plot {name!r} (doses, anomalies, prescribers)")
