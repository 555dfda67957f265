from django import template

register = template.Library()


@register.filter
def percent(value, digits: int = 0) -> str:
    """0.4567 -> '46%'; None (no faces, no data) -> an em dash."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def wrong_in(accuracy) -> str:
    """How often an estimate is wrong, in words: 0.733 -> '1 in 4'; 1.0 -> 'no'."""
    error = 1 - float(accuracy)
    return f"1 in {round(1 / error)}" if error > 0 else "no"
