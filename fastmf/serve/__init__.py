"""Serving a fitted model: recommendations, similar items and users, fold-in, model files.

The public functions are re-exported by ``fastmf`` (and by ``fastmf.recommend`` and
``fastmf.serialize``); import them from there.
"""

from fastmf._services import provide
from fastmf.serve import fold_in as _fold_in
from fastmf.serve import recommend as _recommend
from fastmf.serve import similar as _similar
from fastmf.serve.files import model_file as _model_file

# the estimator's serving methods call these (training sits below serving: fastmf._services)
for _function in (
    _recommend.recommend, _recommend.recommend_many, _similar.similar_items,
    _similar.similar_users, _fold_in.fold_in, _model_file.save,
):  # fmt: skip
    provide(_function.__name__, _function)
