"""The "your export is ready" message (Spanish, as the product's UI)."""

from __future__ import annotations

from html import escape


def ready_message(customer: str, order_id: str, url: str, n_studies: int, size_bytes: int,
                  expires_hours: int, not_available: int = 0, api_url: str | None = None) -> tuple[str, str]:
    """(subject, HTML body) of the email sent when a package is ready."""
    size = f"{size_bytes / 1e6:,.1f} MB" if size_bytes >= 1e5 else f"{size_bytes / 1e3:,.1f} kB"
    missing = (f"<p>{not_available} estudio(s) solicitados no están disponibles en sus regiones "
               "y no se incluyeron.</p>") if not_available else ""
    api_line = (f'<p>Desde un programa (mismo enlace de un solo uso): <code class="api-url">curl -H "X-API-Key: '
                f'su-clave" -o paquete.zip "{escape(api_url)}"</code></p>') if api_url else ""
    body = f"""<p>Hola {escape(customer)}:</p>
<p>Su exportación <b>{escape(order_id)}</b> está lista: {n_studies} estudio(s), {size}.</p>
{missing}<p>Descárguela aquí (el enlace funciona una vez y vence en {expires_hours} horas; la página le pedirá
entrar con su cuenta si hace falta):</p>
<p><a href="{escape(url)}">{escape(url)}</a></p>
{api_line}
<p>El paquete incluye <code>manifest.json</code> y <code>SHA256SUMS</code> para verificar cada archivo.</p>
<p>— STA, SaludTech de los Alpes</p>
"""
    return f"STA: su exportación {order_id} está lista", body


def failed_message(customer: str, order_id: str) -> tuple[str, str]:
    body = (f"<p>Hola {escape(customer)}:</p><p>Su exportación <b>{escape(order_id)}</b> no pudo completarse. "
            "Nuestro equipo fue notificado; puede volver a solicitarla desde la página de búsqueda.</p>"
            "<p>— STA, SaludTech de los Alpes</p>")
    return f"STA: su exportación {order_id} no pudo completarse", body
