"""The one exception type for problems the user can fix.

The CLI prints an :class:`InputError` as a single line and exits with status 2; any other
exception is a bug in nhpipe and keeps its traceback.

Messages name what the user can change as the Python parameter, in backticks: ```samples```,
```overwrite=True```, ```distance='400pc'```, ```columns['density']```. Python callers read
them as written; the CLI rewrites each into its flag (``--samples``, ``--overwrite``,
``--distance 400pc``, ``--col-density``) in one place, ``nhpipe.cli.as_flags``.
"""


class InputError(ValueError):
    """Bad input or options: the message names the problem and what to do about it."""


def one_line(exc: BaseException, default: str = "") -> str:
    """The informative line of a library's (often multi-line) error message.

    wcslib's errors start with a location line (``ERROR 4 in wcs_types() at line ...``)
    and astropy's verification errors with a heading (``Verification reported errors:``);
    the line after them says what is wrong.
    """
    import re

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not re.match(r"ERROR \d+ in \w+\(\)", line)
              and not line.endswith("errors:")]
    text = useful[0] if useful else (default or (lines[0] if lines else type(exc).__name__))
    # The first sentence says what is wrong; later ones suggest options of the library
    # (astropy's "try with ignore_missing_simple=True") that the user cannot pass.
    text = re.split(r"(?<=[a-z)]),? (?=this file|[Ii]f this is|[Tt]ry )|(?<=\.) (?=[A-Z])", text)[0]
    return text if len(text) <= 160 else text[:157] + "..."
