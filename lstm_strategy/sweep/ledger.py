"""Writes to the sweep's Optuna ledger in batches: one transaction for many trials.

Optuna's storage calls each open a transaction and run several ORM queries (~5 ms a
call here), so recording 1,000 trials one call at a time costs more than evaluating
them. The driver is the ledger's only writer (it holds the sweep lock), so it may create
the plan's trials and record finished ones in bulk, into the tables of the storage's own
ORM models within its session; Optuna reads them back like its own (a test checks it). Where the storage
is not Optuna's RDB storage (or its models moved), the public calls are used instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime


class Ledger:
    """Creates trials and records their ends for one study; `flush()` commits the ends."""

    def __init__(self, storage: object, study_id: int, every: float = 0.25,
                 batch: int = 500, before_commit: Callable[[], None] | None = None) -> None:
        self.storage, self.study_id = storage, study_id
        self.before_commit = before_commit  # writes what must be on disk before the ledger
        self.every, self.batch = every, batch
        self.pending: list[tuple[int, object, float | None, dict]] = []
        self.last = time.monotonic()
        try:
            from optuna.storages._rdb import models
            self.models = models
            self.session = storage.scoped_session
        except (ImportError, AttributeError):  # another storage or Optuna layout: public calls
            self.models = self.session = None

    # -- trials -----------------------------------------------------------------------
    def create(self, points: list[tuple[int, dict]], distributions: dict
               ) -> list[tuple[int, int]]:
        """RUNNING trials for (point, params) pairs, numbered in order: (trial id, number)."""
        import optuna

        if self.models is None:
            ids = []
            for point, params in points:
                template = optuna.trial.FrozenTrial(
                    number=-1, state=optuna.trial.TrialState.RUNNING, value=None,
                    datetime_start=datetime.now(), datetime_complete=None, params=params,
                    distributions={k: distributions[k] for k in params},
                    user_attrs={"point": point}, system_attrs={}, intermediate_values={},
                    trial_id=-1)
                trial_id = self.storage.create_new_trial(self.study_id, template_trial=template)
                ids.append((trial_id, self.storage.get_trial_number_from_id(trial_id)))
            return ids
        import sqlalchemy as sa

        m = self.models
        trials, params_table, attrs = (m.TrialModel.__table__, m.TrialParamModel.__table__,
                                       m.TrialUserAttributeModel.__table__)
        session = self.session()
        try:
            first = session.execute(sa.select(sa.func.count()).select_from(trials).where(
                trials.c.study_id == self.study_id)).scalar_one()
            next_id = (session.execute(sa.select(sa.func.max(trials.c.trial_id))).scalar()
                       or 0) + 1
            now = _utc_now()
            rows, param_rows, attr_rows, out = [], [], [], []
            for offset, (point, params) in enumerate(points):
                trial_id, number = next_id + offset, first + offset
                rows.append({"trial_id": trial_id, "number": number, "study_id": self.study_id,
                             "state": optuna.trial.TrialState.RUNNING, "datetime_start": now})
                for key, value in params.items():
                    distribution = distributions[key]
                    param_rows.append({
                        "trial_id": trial_id, "param_name": key,
                        "param_value": distribution.to_internal_repr(value),
                        "distribution_json": optuna.distributions.distribution_to_json(
                            distribution)})
                attr_rows.append({"trial_id": trial_id, "key": "point",
                                  "value_json": json.dumps(point)})
                out.append((trial_id, number))
            for table, batch in ((trials, rows), (params_table, param_rows), (attrs, attr_rows)):
                if batch:
                    session.execute(table.insert(), batch)
            session.commit()
            return out
        except BaseException:
            session.rollback()
            raise

    def finish(self, trial_id: int, state: object, value: float | None, attrs: dict) -> None:
        """Record a trial's end (state, objective value, user attributes); committed by the
        next flush, which comes by itself every `every` seconds or `batch` trials."""
        self.pending.append((trial_id, state, value, attrs))
        if len(self.pending) >= self.batch or time.monotonic() - self.last >= self.every:
            self.flush()

    def flush(self) -> None:
        """Commit every recorded end in one transaction."""
        pending, self.pending, self.last = self.pending, [], time.monotonic()
        if not pending:
            return
        if self.before_commit is not None:
            self.before_commit()
        if self.models is None:
            for trial_id, state, value, attrs in pending:
                for key, item in attrs.items():
                    self.storage.set_trial_user_attr(trial_id, key, item)
                self.storage.set_trial_state_values(trial_id, state,
                                                    None if value is None else [value])
            return
        import sqlalchemy as sa

        m = self.models
        trials, values, attrs = (m.TrialModel.__table__, m.TrialValueModel.__table__,
                                 m.TrialUserAttributeModel.__table__)
        session = self.session()
        try:
            ids = [p[0] for p in pending]
            states = dict(session.execute(sa.select(trials.c.trial_id, trials.c.state).where(
                trials.c.trial_id.in_(ids))).all())
            held = {(row.trial_id, row.key) for row in session.execute(
                sa.select(attrs.c.trial_id, attrs.c.key).where(attrs.c.trial_id.in_(ids)))}
            now = _utc_now()
            ends, value_rows, new_attrs, old_attrs = [], [], [], []
            for trial_id, state, value, items in pending:
                if states[trial_id].is_finished():
                    raise RuntimeError(f"trial id {trial_id} is already finished")
                ends.append({"id": trial_id, "state": state, "complete": now})
                if value is not None:
                    stored, kind = m.TrialValueModel.value_to_stored_repr(value)
                    value_rows.append({"trial_id": trial_id, "objective": 0, "value": stored,
                                       "value_type": kind})
                for key, item in items.items():
                    if (trial_id, key) in held:
                        old_attrs.append({"id": trial_id, "name": key, "json": json.dumps(item)})
                    else:
                        new_attrs.append({"trial_id": trial_id, "key": key,
                                          "value_json": json.dumps(item)})
            session.execute(trials.update().where(trials.c.trial_id == sa.bindparam("id"))
                            .values(state=sa.bindparam("state"),
                                    datetime_complete=sa.bindparam("complete")), ends)
            if value_rows:
                session.execute(values.insert(), value_rows)
            if new_attrs:
                session.execute(attrs.insert(), new_attrs)
            if old_attrs:  # a resumed trial may hold some already
                session.execute(attrs.update().where(
                    (attrs.c.trial_id == sa.bindparam("id"))
                    & (attrs.c.key == sa.bindparam("name"))).values(
                    value_json=sa.bindparam("json")), old_attrs)
            session.commit()
        except BaseException:
            session.rollback()
            self.pending = pending + self.pending
            raise


def _utc_now() -> datetime:
    """Now as the naive UTC time Optuna's RDB storage keeps."""
    return datetime.now(UTC).replace(tzinfo=None)
