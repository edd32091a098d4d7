"""One model, many threads: training is exclusive, serving is shared.

A model's ``fit`` and ``partial_fit`` are writers: one at a time, and no reader meanwhile (a
second writer waits its turn). ``predict``, ``score``, ``recommend``, ``similar_*``, ``fold_in``
and ``save`` are readers: any number at once, waiting while a writer runs. A reader inside the
writer's own thread (a callback that calls ``model.predict``) goes through; a writer inside the
writer's own thread (a callback that calls ``model.fit``) is refused, since it would train the
model from inside its own epoch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fastmf.errors import ModelBusyError  # noqa: F401 - re-exported here too

_CREATE = threading.Lock()


class ModelLock:
    """A readers-writer lock for one model (not pickled: a copy gets a lock of its own)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None

    @contextmanager
    def writing(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                raise ModelBusyError(
                    "this model is already training in this thread: fit or partial_fit was "
                    "called from inside its own training (a callback?); train a copy instead "
                    "(sklearn.base.clone(model))"
                )
            while self._writer is not None or self._readers:
                self._cond.wait()
            self._writer = me
        try:
            yield
        finally:
            with self._cond:
                self._writer = None
                self._cond.notify_all()

    @contextmanager
    def reading(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:  # the training thread itself, e.g. a callback
                nested = True
            else:
                nested = False
                while self._writer is not None:
                    self._cond.wait()
                self._readers += 1
        try:
            yield
        finally:
            if not nested:
                with self._cond:
                    self._readers -= 1
                    self._cond.notify_all()


def lock_of(model: object) -> ModelLock:
    """The model's lock, made on first use (stored in its ``__dict__`` as ``_lock``)."""
    lock = model.__dict__.get("_lock")
    if lock is None:
        with _CREATE:
            lock = model.__dict__.setdefault("_lock", ModelLock())
    return lock
