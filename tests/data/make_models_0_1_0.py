"""Write the model files of fastmf 0.1.0 that tests/test_serialize_golden.py loads.

Run once, with fastmf 0.1.0 (the code that wrote format version 1 before the allowlist
decoder): ``python tests/data/make_models_0_1_0.py``. Each ``NAME.model`` is a small fitted model
saved by that version; ``NAME.expected.json`` beside it holds the pairs it was asked to predict
(raw ids, with an unknown user and an unknown item) and its predictions, clipped and not, as
exact float64 values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import fastmf
from fastmf import MatrixFactorization
from fastmf.datasets.synthetic import synthetic

HERE = Path(__file__).parent / "models-0.1.0"

SETTINGS = {
    "sgd": {"optimizer": "sgd"},
    "sgd-batch": {"optimizer": "sgd", "batch_size": 8, "learning_rate": 0.2},
    "adagrad-fixed": {"optimizer": "adagrad", "batch_size": 4, "biases": "fixed"},
    "adam-none-f64": {"optimizer": "adam", "batch_size": 4, "biases": "none", "dtype": "float64"},
    "row_adagrad": {"optimizer": "row_adagrad", "batch_size": 16, "learning_rate": 0.2},
    "plateau-early": {
        "lr_schedule": "plateau",
        "early_stopping": True,
        "patience": 1,
        "n_epochs": 5,
    },
    "string-ids": {"optimizer": "adam", "batch_size": 2, "validation_fraction": 0.2},
}


def ratings(name: str):
    df = synthetic(24, 30, 500, random_state=5)
    if name == "string-ids":
        df = df.assign(user=[f"u{u}" for u in df["user"]], item=[f"film é {i}" for i in df["item"]])
    return df


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for name, extra in SETTINGS.items():
        df = ratings(name)
        params = {"n_factors": 3, "n_epochs": 3, "random_state": 7, "verbose": 0, "n_jobs": 1}
        params.update(extra)
        titles = {i: f"title of {i}" for i in df["item"].unique()[:5]}
        model = MatrixFactorization(**params).fit(df, item_titles=titles)
        fastmf.save(model, HERE / f"{name}.model")
        users = df["user"].iloc[:40].tolist() + ["nobody" if name == "string-ids" else -1]
        items = df["item"].iloc[40:80].tolist() + [df["item"].iloc[0]]
        users = users[: len(items)]
        users[-1] = "nobody" if name == "string-ids" else -1
        items[-2] = "no film" if name == "string-ids" else -1
        pairs = np.array(list(zip(users, items, strict=True)), dtype=object)
        expected = {
            "fastmf_version": fastmf.__version__,
            "users": [u.item() if hasattr(u, "item") else u for u in pairs[:, 0]],
            "items": [i.item() if hasattr(i, "item") else i for i in pairs[:, 1]],
            "predict": model.predict(pairs).tolist(),
            "predict_noclip": model.predict(pairs, clip=False).tolist(),
            "n_epochs_done": model.n_epochs_done_,
            "best_epoch": model.best_epoch_,
        }
        (HERE / f"{name}.expected.json").write_text(json.dumps(expected, indent=1) + "\n")
        print(name, (HERE / f"{name}.model").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
