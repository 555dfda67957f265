"""What a page must not contain for a strict Content-Security-Policy (script-src 'self';
style-src 'self'): inline scripts, inline event handlers, style blocks or attributes."""

import re

INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.IGNORECASE)
STYLE = re.compile(r"<style\b|<[^>]*\sstyle\s*=", re.IGNORECASE)
SCRIPT_TAG = re.compile(r"<script\b[^>]*\bsrc=[^>]*>", re.IGNORECASE)


def assert_strict_csp_possible(html: str, where: str) -> None:
    for name, pattern in (("inline handler", INLINE_HANDLER), ("inline script", INLINE_SCRIPT),
                          ("inline style", STYLE)):  # fmt: skip
        found = pattern.search(html)
        assert found is None, f"{where}: {name} {found.group(0)[:120]!r}"
    for tag in SCRIPT_TAG.findall(html):
        assert " defer" in tag, f"{where}: script without defer {tag!r}"
