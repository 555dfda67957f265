"""Status chips (job, photo and account states, model flags, the admin badge) are readable:
their text against their own background meets WCAG 2's 4.5:1 for normal text, computed from the
colours in static/css/app.css itself."""

import re
from pathlib import Path

import pytest

from ml.labels import STATE_COLOURS, STATES

CSS = Path(__file__).resolve().parents[1] / "static" / "css" / "app.css"
# Rules whose selectors start with these are the chips: small text on a tinted background.
CHIP_CLASSES = (".status", ".flag", ".badge")
WCAG_AA_TEXT = 4.5


def _rules(css: str) -> list[tuple[str, dict]]:
    """(selector, {property: value}) of every flat rule (at-rule blocks are skipped)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    css = re.sub(r"@[^{]+\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", css)  # @media and the like
    rules = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = dict(
            (name.strip(), value.strip())
            for name, _, value in (d.partition(":") for d in body.split(";") if ":" in d)
        )
        for selector in selectors.split(","):
            rules.append((" ".join(selector.split()), declarations))
    return rules


def _resolve(value: str, variables: dict) -> str:
    while match := re.search(r"var\((--[\w-]+)\)", value):
        value = value.replace(match.group(0), variables[match.group(1)])
    return value


def _luminance(colour: str) -> float:
    hex_digits = colour.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(c * 2 for c in hex_digits)
    channels = [int(hex_digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _stylesheet() -> tuple[dict[str, dict], dict[str, str]]:
    """Each selector's declarations (a later rule overrides an earlier one), and the variables
    of :root."""
    merged: dict[str, dict] = {}
    for selector, declarations in _rules(CSS.read_text()):
        merged.setdefault(selector, {}).update(declarations)
    return merged, {k: v for k, v in merged[":root"].items() if k.startswith("--")}


def chip_colours() -> dict[str, tuple[str, str]]:
    """Each chip selector's (text colour, background colour), with what it inherits: a
    variant (`.status.done`) takes what it does not set from its base (`.status`), the base
    from the page (the body's text on a card)."""
    merged, variables = _stylesheet()
    page = {"color": merged["body"]["color"], "background": merged[".card"]["background"]}
    colours = {}
    for selector, declarations in merged.items():
        if not selector.startswith(CHIP_CLASSES) or " " in selector or ":" in selector:
            continue
        base = merged.get(re.match(r"\.[\w-]+", selector).group(0), {})
        own = {**page, **base, **declarations}
        colours[selector] = (
            _resolve(own["color"], variables),
            _resolve(own.get("background", page["background"]), variables),
        )
    return colours


def test_the_parser_reads_the_chips_and_their_colours():
    colours = chip_colours()
    assert {".status", ".status.done", ".status.failed", ".status.running", ".flag"} <= set(colours)
    assert all(re.fullmatch(r"#[0-9a-fA-F]{3,6}", c) for pair in colours.values() for c in pair)
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # just below AA


@pytest.mark.parametrize("selector", sorted(chip_colours()))
def test_chip_text_meets_wcag_contrast(selector):
    text, background = chip_colours()[selector]
    ratio = contrast(text, background)
    assert ratio >= WCAG_AA_TEXT, f"{selector}: {text} on {background} is {ratio:.2f}:1"


# Text set in a colour of its own, on the backgrounds it sits on: a card, and the selected face
# in a photo's face list.
COLOURED_TEXT = [f".state-{state}" for state in STATES] + [".uncertain-tag"]
BACKGROUNDS = [".card", ".face-item[aria-pressed=true]"]


def test_the_state_colours_of_pages_and_charts_are_one_palette():
    merged, variables = _stylesheet()
    assert {state: variables[f"--{state.lower()}"] for state in STATES} == STATE_COLOURS


@pytest.mark.parametrize("selector", COLOURED_TEXT)
@pytest.mark.parametrize("under", BACKGROUNDS)
def test_coloured_text_meets_wcag_contrast(selector, under):
    merged, variables = _stylesheet()
    text = _resolve(merged[selector]["color"], variables)
    background = _resolve(merged[under]["background"], variables)
    ratio = contrast(text, background)
    assert ratio >= WCAG_AA_TEXT, f"{selector}: {text} on {background} is {ratio:.2f}:1"


def test_corrected_numbers_are_never_greyed_whether_or_not_they_conclude():
    """Issue 23: corrected shares and ranges were greyed to about 2.5:1 below the minimum of
    faces; "not yet conclusive" is said in words (the conclusion meter), so no rule may fade
    them, and any colour of their own meets 4.5:1 on a card."""
    merged, variables = _stylesheet()
    card = _resolve(merged[".card"]["background"], variables)
    rules = {s: d for s, d in merged.items() if ".corrected" in s or "few-faces" in s}
    for selector, declarations in rules.items():
        assert float(declarations.get("opacity", "1")) == 1, selector
        if "color" in declarations:
            text = _resolve(declarations["color"], variables)
            assert contrast(text, card) >= WCAG_AA_TEXT, selector
    body = _resolve(merged["body"]["color"], variables)
    assert contrast(body, card) >= WCAG_AA_TEXT
