"""The scikit-learn estimator contract: parameters read from the constructor's signature,
``get_params`` and ``set_params``, a repr of the changed parameters, and the estimator tags."""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

from fastmf.train.params import same

T = TypeVar("T", bound="EstimatorContract")


class EstimatorContract:
    """Mixed into the estimators: what scikit-learn's ``clone``, searches and pipelines use."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters, as scikit-learn's ``clone`` and searches expect."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self: T, **params: Any) -> T:
        """Set constructor parameters by name; returns self."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"unknown parameter {name!r} for {type(self).__name__}; valid: {sorted(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = type(self)().get_params()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not same(v, defaults[k])]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):  # pragma: no cover - exercised through scikit-learn
        from sklearn.utils import RegressorTags, Tags, TargetTags

        return Tags(
            estimator_type="regressor",
            target_tags=TargetTags(required=True),
            regressor_tags=RegressorTags(),
        )
