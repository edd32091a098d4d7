"""The serving functions behind the estimator's methods (``model.recommend``, ``model.save``, ...).

Training sits below serving and does not import it: ``fastmf.serve`` provides its functions here
when it is imported (which importing any part of fastmf does, through the package's
``__init__``), and the estimator's methods look them up by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_PROVIDED: dict[str, Callable[..., Any]] = {}


def provide(name: str, function: Callable[..., Any]) -> None:
    """Make ``function`` the service called ``name``."""
    _PROVIDED[name] = function


def service(name: str) -> Callable[..., Any]:
    """The function provided as ``name``."""
    try:
        return _PROVIDED[name]
    except KeyError:
        raise RuntimeError(
            f"{name} is provided by fastmf.serve, which is not imported; import fastmf first"
        ) from None
