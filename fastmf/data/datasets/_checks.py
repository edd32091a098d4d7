"""What the ratings parser checks in Python, and how it names what it found: the format from
the first line, the line behind a kernel's error code, and ratings off the release's scale.

A file in another release's format gets an error that says so, since :func:`sniff_format` tells
the three formats apart from the first line.
"""

from __future__ import annotations

import numpy as np

from fastmf._kernels import parsing as K
from fastmf.data.datasets.releases import CSV, DAT, UDATA, RatingsFormat, Scale

_FIELDS = ("user", "item", "rating", "timestamp")


def first_line(buf: np.ndarray) -> tuple[str, int]:
    """The first line of ``buf`` (latin-1, without its line end) and where the next one starts."""
    head = bytes(buf[:4096])
    end = head.find(b"\n")
    nxt = end + 1 if end >= 0 else len(head)
    if end < 0:
        end = len(head)
    line = head[:end].rstrip(b"\r")
    if line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]
    return line.decode("latin-1"), nxt


def sniff_format(line: str) -> RatingsFormat | None:
    """Guess the format from the first line; None when it looks like no ratings format."""
    if "::" in line:
        return DAT
    if "\t" in line:
        return UDATA
    if "," in line:
        return CSV
    return None


def _describe(line: str) -> str:
    return repr(line if len(line) <= 80 else line[:77] + "...")


def check_format(buf: np.ndarray, fmt: RatingsFormat, where: str, release: str | None) -> int:
    """Check that ``buf`` is in format ``fmt``; return the offset of the first data line.

    Raises ValueError naming the problem: an empty file, a file in another release's format, or
    a csv header with a missing or unexpected column.
    """
    if buf.size == 0:
        raise ValueError(f"{where} is empty; expected {fmt.description}")
    line, nxt = first_line(buf)
    who = f"{release} ships" if release else "expected"
    seen = sniff_format(line)
    if fmt.header is not None:
        names = [c.strip().strip('"') for c in line.split(",")]
        if seen is CSV and not all(n.lstrip("-").replace(".", "").isdigit() for n in names):
            missing = [c for c in fmt.header if c not in names]
            extra = [c for c in names if c not in fmt.header]
            if missing or extra or tuple(names) != fmt.header:
                problems = []
                if missing:
                    problems.append(f"missing column(s) {', '.join(map(repr, missing))}")
                if extra:
                    problems.append(f"unexpected column(s) {', '.join(map(repr, extra))}")
                if not problems:
                    problems.append("columns in another order")
                raise ValueError(
                    f"{where} has header {_describe(line)}: {'; '.join(problems)}. "
                    f"{who} {fmt.description}; is this the ratings file?"
                )
            return nxt
        if seen is CSV:
            raise ValueError(
                f"{where} has no header line (first line {_describe(line)}); {who} "
                f"{fmt.description}. Add the header line if the columns are in that order."
            )
    elif seen is fmt:
        return 0
    if seen is None:
        raise ValueError(
            f"{where} does not look like a MovieLens ratings file (first line {_describe(line)}); "
            f"{who} {fmt.description}"
        )
    raise ValueError(
        f"{where} is in the format of {seen.description}, not the {fmt.description} that "
        f"{'release ' + release + ' uses' if release else 'its name implies'} "
        f"(first line {_describe(line)}). Point to the matching release name or file."
    )


def _line_at(buf: np.ndarray, pos: int) -> tuple[int, str]:
    """(1-based line number, text of that line) for byte offset ``pos``."""
    pos = min(max(pos, 0), max(buf.size - 1, 0))
    line_no = int(np.count_nonzero(buf[:pos] == K.NEWLINE)) + 1
    lo = pos
    while lo > 0 and buf[lo - 1] != K.NEWLINE:
        lo -= 1
    hi = int(K.next_line_start(buf, pos, buf.size))
    text = bytes(buf[lo : min(hi, lo + 200)]).rstrip(b"\r\n").decode("latin-1")
    return line_no, text


def error_message(
    buf: np.ndarray, code: int, pos: int, fmt: RatingsFormat, where: str, release: str | None
) -> str:
    kind, field = divmod(code, 10)
    name = _FIELDS[field]
    line_no, text = _line_at(buf, pos)
    if kind * 10 == K.ERR_NUMBER:
        what = {
            "rating": "a number like 4 or 3.5",
            "timestamp": "an integer (seconds since 1970)",
        }.get(name, "a non-negative integer")
        problem = f"the {name} field is not {what}"
    elif kind * 10 == K.ERR_TOO_LARGE:
        problem = f"the {name} value is too large for its column"
    elif kind * 10 == K.ERR_SEPARATOR:
        problem = f"expected the separator {fmt.sep.decode()!r} after the {name} field"
        if field < 3:
            problem += " (a missing column, or another release's format?)"
    else:
        problem = "unexpected text after the timestamp (an extra column?)"
    return (
        f"{where}, line {line_no}: {problem}. The line reads {_describe(text)}; expected "
        f"{fmt.description} with 4 columns user, item, rating, timestamp."
    )


def check_scale(
    ratings: np.ndarray,
    scale: Scale,
    where: str,
    release: str | None,
    *,
    buf: np.ndarray | None = None,
    start: int = 0,
) -> None:
    """Raise ValueError when a rating is off ``scale`` (outside its range or between its steps)."""
    count, row = K.off_scale(ratings, np.float32(scale.low), np.float32(scale.high),
                             np.float32(scale.step))  # fmt: skip
    if count == 0:
        return
    count, row = int(count), int(row)
    line = ""
    if buf is not None:
        line_no = _nth_line_number(buf, start, row)
        line = f" (line {line_no})"
    who = f"release {release}" if release else "this file"
    raise ValueError(
        f"{where}: {count} rating(s) off the scale of {who}, {scale.description}; the first "
        f"is {float(ratings[row]):g} at row {row}{line}. Check that the file belongs to "
        f"{release or 'the release you meant'}."
    )


def _nth_line_number(buf: np.ndarray, start: int, row: int) -> int:
    """1-based line number in the file of data row ``row`` (counting only non-empty lines)."""
    nl = np.flatnonzero(buf[start:] == K.NEWLINE)
    header_lines = int(np.count_nonzero(buf[:start] == K.NEWLINE))
    # lines are non-empty in practice; an exact count over empty lines is not worth the cost here
    return header_lines + min(row, nl.size) + 1
