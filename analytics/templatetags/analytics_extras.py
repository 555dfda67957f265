from django import template

register = template.Library()


@register.filter
def percent(value, digits: int = 0) -> str:
    """0.4567 -> '46%'; None (no faces, no data) -> an em dash."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f}%"
