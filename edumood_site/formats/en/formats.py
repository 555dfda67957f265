"""The one date format of every page: day, short month, year (and 24-hour time).

Unambiguous to readers on both sides of the Atlantic, unlike 02/09/2024; `{{ value }}` and
`|date` give DATE_FORMAT, `|date:"DATETIME_FORMAT"` the date with its time.
"""

DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y, H:i"
SHORT_DATE_FORMAT = DATE_FORMAT
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
