"""Rows of ``rows_table``'s table that differ in one value each: a hyperparameter one leaves at its default, or a
dataset option a row gives (one its setting gives too, or one no setting gives)."""

from __future__ import annotations

from harness import hookimpl
from harness.tables import TableRow

TABLE = "rows-table"


@hookimpl
def harness_table_rows() -> list[TableRow]:
    """Four rows of ``knn``: ``k`` at its default (1) or 3; noisier images; larger images in the first setting."""
    return [
        TableRow(TABLE, "kNN", model="knn"),
        TableRow(TABLE, "kNN k3", {"k": 3}, model="knn"),
        TableRow(TABLE, "kNN noisy", data={"noise": 0.2}, model="knn"),
        TableRow(TABLE, "kNN big", settings=("5-way 1-shot",), data={"image_size": 12}, model="knn"),
    ]
