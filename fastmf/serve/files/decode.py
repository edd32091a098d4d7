"""Decoding a manifest into a :class:`~fastmf.serve.files.state.FittedState`, by the allowlist.

Every attribute has one decoder for its one allowed kind; every array is named by a member
whose npy header is read (and checked against the manifest) but whose data is not, until
:meth:`FittedState.read_arrays` after the layout checks.
"""

from __future__ import annotations

from typing import Any

from fastmf.serve.files.container import Archive, ArraySpec
from fastmf.serve.files.schema import (
    ARRAYS,
    ATTRIBUTES,
    FIT_PARAMS,
    HISTORY_COLUMNS,
    MANIFEST,
    MAPS,
    MARKER_NAME,
    MODEL_CLASS,
    OPTIMIZER_KEYS,
    RESOLVED,
    SEEN,
    STATE_CLASS,
    STATE_FIELDS,
    STATE_OPTIONAL,
    STRATA_CLASS,
    Invalid,
)
from fastmf.serve.files.state import FittedState
from fastmf.serve.files.values import (
    check_kind,
    decode_generator,
    decode_objects,
    decode_param,
    decode_scalar,
    decode_titles,
    field_of,
    only_keys,
    short,
)

__all__ = ["fitted_from_manifest"]

_MANIFEST_KEYS = {"format", "format_version", "fastmf_version", "class", "params",
                  "params_dropped", "attributes", "train_state"}  # fmt: skip


def fitted_from_manifest(manifest: dict, archive: Archive) -> FittedState:
    """The state a manifest describes; arrays as the specs of their members (unread)."""
    only_keys(manifest, "manifest", _MANIFEST_KEYS)
    if manifest.get("class", MODEL_CLASS) != MODEL_CLASS:
        raise Invalid("manifest class", f"{short(manifest.get('class'))} is outside fastmf's "
                      f"known types; only {MODEL_CLASS} models can be loaded")  # fmt: skip
    params, dropped = _params(manifest)
    fitted = FittedState(
        params=params, dropped=dropped, arrays={}, scalars={}, user_ids=None, item_ids=None,
        history_columns=[], history_rows=0, state=None,
    )  # fmt: skip
    decoder = _Decoder(fitted, archive)
    decoder.attributes(field_of(manifest, "attributes", dict, "manifest"))
    state = manifest.get("train_state")
    if state is not None:
        fitted.state = decoder.train_state(state)
    referenced = {MARKER_NAME, MANIFEST, *fitted.members.values()}
    for member in archive.names:
        if member not in referenced:
            raise Invalid(f"member {short(member)}", "is not described by the manifest")
    return fitted


def _params(manifest: dict) -> tuple[dict[str, Any], list[str]]:
    """The saved parameters (names of the estimator only) and the names save left out."""
    from fastmf.train.estimator import MatrixFactorization

    known = MatrixFactorization._param_names()
    raw_params = field_of(manifest, "params", dict, "manifest")
    params = {}
    for name, desc in raw_params.items():
        if name not in known:
            raise Invalid(f"params.{short(name)}", "is not a parameter of MatrixFactorization")
        params[name] = decode_param(desc, f"params.{name}")
    dropped = manifest.get("params_dropped", [])
    if not isinstance(dropped, list) or any(n not in known for n in dropped):
        raise Invalid("params_dropped", "must list parameter names of MatrixFactorization")
    return params, list(dropped)


class _Decoder:
    """Fills a FittedState from manifest descriptions, recording each array's member."""

    def __init__(self, fitted: FittedState, archive: Archive):
        self.fitted = fitted
        self.archive = archive

    # ---------------------------------------------------------------- attributes
    def attributes(self, attributes: dict) -> None:
        """Every attribute of a fitted model, each by the decoder of its kind."""
        for name in attributes:
            if name not in ATTRIBUTES:
                raise Invalid(
                    f"attributes.{short(name)}",
                    "is not an attribute of a fitted MatrixFactorization (the file may only "
                    "describe factors, biases, id maps, seen items, titles and history)",
                )
        f = self.fitted
        for name in ATTRIBUTES:
            if name not in attributes:
                if name in SEEN or name in RESOLVED:
                    continue
                raise Invalid(f"attributes.{name}", "is missing")
            desc, where = attributes[name], f"attributes.{name}"
            if name in ARRAYS or name in SEEN:
                f.arrays[name] = self.spec(desc, name, where)
            elif name in MAPS:
                setattr(f, "user_ids" if name == "user_map_" else "item_ids",
                        self.id_map(desc, name, where))  # fmt: skip
            elif name == "history_":
                self.history(desc, where)
            elif name == "item_titles_":
                f.scalars[name] = decode_titles(desc, where)
            elif name == "rating_scale_":
                f.scalars[name] = _rating_scale(desc, where)
            else:
                f.scalars[name] = decode_scalar(desc, where)
        if (SEEN[0] in f.arrays) != (SEEN[1] in f.arrays):
            raise Invalid(
                "attributes", "holds one of seen_indptr_ and seen_items_ without the other"
            )

    def spec(self, desc: Any, label: str, where: str) -> ArraySpec:
        """The header of the npy member an array description names, checked against it."""
        check_kind(desc, "array", where)
        only_keys(desc, where, {"t", "member", "dtype", "shape"})
        member = field_of(desc, "member", str, where)
        members = self.fitted.members
        if member in members.values():
            raise Invalid(where, f"names member {short(member)} that another value also names")
        if member in (MARKER_NAME, MANIFEST) or not member.endswith(".npy"):
            raise Invalid(where, f"names member {short(member)}, which is not an array")
        if member not in self.archive.infos:
            raise Invalid(where, f"names member {short(member)}, which the file does not hold")
        spec = self.archive.array_spec(member)
        if "dtype" in desc and desc["dtype"] != spec.dtype.str:
            raise Invalid(where, f"declares dtype {short(desc['dtype'])} but {member} holds "
                          f"{spec.dtype.str}")  # fmt: skip
        if "shape" in desc and desc["shape"] != list(spec.shape):
            raise Invalid(where, f"declares shape {short(desc['shape'])} but {member} holds "
                          f"{spec.shape}")  # fmt: skip
        members[label] = member
        return spec

    def id_map(self, desc: Any, name: str, where: str) -> Any:
        """An id map's raw ids: inline objects, or the spec of an integer array."""
        check_kind(desc, "idmap", where)
        only_keys(desc, where, {"t", "ids"})
        ids_desc = field_of(desc, "ids", dict, where)
        if ids_desc.get("t") == "objects":
            return decode_objects(ids_desc, f"{where}.ids")
        return self.spec(ids_desc, name, f"{where}.ids")

    def history(self, desc: Any, where: str) -> None:
        """The history's row count and columns (distinct, of the known names)."""
        f = self.fitted
        check_kind(desc, "frame", where)
        only_keys(desc, where, {"t", "columns", "n_rows"})
        n_rows = field_of(desc, "n_rows", int, where)
        if isinstance(n_rows, bool) or n_rows < 0:
            raise Invalid(f"{where}.n_rows", f"must be a count, got {short(n_rows)}")
        f.history_rows = n_rows
        for j, col in enumerate(field_of(desc, "columns", list, where)):
            cw = f"{where}.columns[{j}]"
            if not isinstance(col, dict):
                raise Invalid(cw, "must be an object with a name and data")
            only_keys(col, cw, {"name", "data"})
            name = col.get("name")
            if name not in HISTORY_COLUMNS or name in f.history_columns:
                raise Invalid(cw, f"names column {short(name)}; expected distinct columns of "
                              f"{HISTORY_COLUMNS}")  # fmt: skip
            f.history_columns.append(name)
            label = f"history_.{name}"
            f.arrays[label] = self.spec(col.get("data"), label, f"{cw}.data")

    # ---------------------------------------------------------------- training state
    def train_state(self, desc: Any) -> dict[str, Any]:
        """The training state's scalars; its arrays (strata, optimizer) as member specs."""
        where = "train_state"
        if not isinstance(desc, dict):
            raise Invalid(where, "must be an object or null")
        only_keys(desc, where, {"class", "fields"})
        if desc.get("class") != STATE_CLASS:
            raise Invalid(f"{where}.class", f"{short(desc.get('class'))} is outside fastmf's "
                          f"known types; the training state must be {STATE_CLASS}")  # fmt: skip
        fields = field_of(desc, "fields", dict, where)
        if not set(STATE_FIELDS) <= set(fields) <= set(STATE_FIELDS + STATE_OPTIONAL):
            raise Invalid(f"{where}.fields", f"must be exactly {STATE_FIELDS} (and, since 0.2, "
                          f"{STATE_OPTIONAL}), got {short(sorted(map(str, fields)))}")  # fmt: skip
        state: dict[str, Any] = {"rng": decode_generator(fields["rng"], f"{where}.rng")}
        for side in ("user_strata", "item_strata"):
            self.strata(fields[side], side, f"{where}.{side}")
        self.optimizer(fields["optimizer"], f"{where}.optimizer")
        state["learning_rate"] = decode_scalar(fields["learning_rate"], f"{where}.learning_rate")
        state["plateau_best"] = decode_scalar(fields["plateau_best"], f"{where}.plateau_best")
        state["optimizer_name"] = None
        state["fit_params"] = {}
        if "optimizer_name" in fields:
            name_where = f"{where}.optimizer_name"
            state["optimizer_name"] = decode_scalar(fields["optimizer_name"], name_where)
        if "fit_params" in fields:
            state["fit_params"] = _fit_params(fields["fit_params"], f"{where}.fit_params")
        return state

    def strata(self, d: Any, side: str, fw: str) -> None:
        """One side's stratum starts (a Strata dataclass of one array)."""
        check_kind(d, "dataclass", fw)
        only_keys(d, fw, {"t", "class", "fields"})
        if d.get("class") != STRATA_CLASS:
            raise Invalid(f"{fw}.class", f"{short(d.get('class'))} is outside fastmf's known "
                          f"types; strata must be {STRATA_CLASS}")  # fmt: skip
        sf = field_of(d, "fields", dict, fw)
        if set(sf) != {"starts"}:
            raise Invalid(f"{fw}.fields", "must hold exactly 'starts'")
        label = f"_state.{side}"
        self.fitted.arrays[label] = self.spec(sf["starts"], label, f"{fw}.starts")

    def optimizer(self, d: Any, ow: str) -> None:
        """The optimizer's accumulators, one array per known key."""
        check_kind(d, "dict", ow)
        only_keys(d, ow, {"t", "keys", "values"})
        keys = field_of(d, "keys", list, ow)
        values = field_of(d, "values", list, ow)
        if sorted(map(str, keys)) != sorted(OPTIMIZER_KEYS) or len(keys) != len(values):
            raise Invalid(f"{ow}.keys", f"must be exactly {OPTIMIZER_KEYS}")
        for key, value in zip(keys, values, strict=True):
            label = f"_state.optimizer.{key}"
            self.fitted.arrays[label] = self.spec(value, label, f"{ow}.{key}")


def _rating_scale(desc: Any, where: str) -> tuple:
    check_kind(desc, "tuple", where)
    only_keys(desc, where, {"t", "items"})
    items = field_of(desc, "items", list, where)
    return tuple(decode_scalar(x, f"{where}.items") for x in items)


def _fit_params(d: Any, fw: str) -> dict[str, Any]:
    """The shape parameters of the fit (written since 0.2)."""
    check_kind(d, "scalars", fw)
    only_keys(d, fw, {"t", "items"})
    items = field_of(d, "items", dict, fw)
    if not set(items) <= set(FIT_PARAMS):
        raise Invalid(fw, f"may hold only {FIT_PARAMS}, got {short(sorted(items))}")
    return {k: decode_scalar(v, f"{fw}.{k}") for k, v in items.items()}
