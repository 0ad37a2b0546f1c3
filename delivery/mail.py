"""The "your export is ready" message (Spanish, as the product's UI)."""

from __future__ import annotations

from html import escape


def ready_message(customer: str, order_id: str, url: str, n_studies: int, size_bytes: int,
                  expires_hours: int, not_available: int = 0) -> tuple[str, str]:
    """(subject, HTML body) of the email sent when a package is ready."""
    size = f"{size_bytes / 1e6:,.1f} MB" if size_bytes >= 1e5 else f"{size_bytes / 1e3:,.1f} kB"
    missing = (f"<p>{not_available} estudio(s) solicitados no están disponibles en sus regiones "
               "y no se incluyeron.</p>") if not_available else ""
    body = f"""<p>Hola {escape(customer)}:</p>
<p>Su exportación <b>{escape(order_id)}</b> está lista: {n_studies} estudio(s), {size}.</p>
{missing}<p>Descárguela aquí (el enlace funciona una vez y vence en {expires_hours} horas; requiere su clave de API
en la cabecera <code>X-API-Key</code>, o ábralo desde «Mis exportaciones» en la página de búsqueda):</p>
<p><a href="{escape(url)}">{escape(url)}</a></p>
<p>El paquete incluye <code>manifest.json</code> y <code>SHA256SUMS</code> para verificar cada archivo.</p>
<p>— STA, SaludTech de los Alpes</p>
"""
    return f"STA: su exportación {order_id} está lista", body


def failed_message(customer: str, order_id: str) -> tuple[str, str]:
    body = (f"<p>Hola {escape(customer)}:</p><p>Su exportación <b>{escape(order_id)}</b> no pudo completarse. "
            "Nuestro equipo fue notificado; puede volver a solicitarla desde la página de búsqueda.</p>"
            "<p>— STA, SaludTech de los Alpes</p>")
    return f"STA: su exportación {order_id} no pudo completarse", body
