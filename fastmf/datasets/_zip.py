"""Old home of the zip member stream: it lives in ``fastmf.data.datasets._zip`` now."""

from fastmf.data.datasets._zip import READ_ERRORS, inflate_module, open_member

__all__ = ["READ_ERRORS", "inflate_module", "open_member"]
