"""The Ray Data ``map_batches`` UDF that turns manifest rows into model-ready columns.

torch and the preprocessor are imported when an actor builds the UDF, not with this module: Ray Data's
coordinating actors (a training run's split coordinator and dataset manager) load the module to read the
plan, and would each pay seconds of imports for nothing."""

from __future__ import annotations

import numpy as np

from tripwire.common.config import from_dict
from tripwire.data.quarantine import write_quarantine
from tripwire.data.rows import prepare_records
from tripwire.data.sample import Sample


class PreprocessBatch:
    """Ray Data ``map_batches`` UDF: manifest rows -> model-ready columns.

    Bad rows (unreadable, corrupt, over a limit, labels outside the taxonomy) never stop the job: they are
    dropped from the stream and written with their reason to the quarantine under ``quarantine_dir``
    (:mod:`tripwire.data.quarantine`).

    Args:
        preprocessing: a :class:`PreprocessingConfig` as a dict (plain data ships cheaply to actors).
        modalities: the modalities the model has encoders for.
        categories: taxonomy category names, in label-column order.
        base_uri: the manifest's folder, for relative media URIs.
        quarantine_dir: where bad rows go; None to only drop them.
    """

    def __init__(self, preprocessing: dict, modalities: list[str], categories: list[str], base_uri: str,
                 quarantine_dir: str | None = None):
        import torch

        from tripwire.data.preprocess import PreprocessingConfig, Preprocessor

        torch.set_num_threads(1)
        self.preprocessor = Preprocessor(from_dict(PreprocessingConfig, preprocessing), modalities)
        self.categories = list(categories)
        self.base_uri = base_uri
        self.quarantine_dir = quarantine_dir

    def labels_vector(self, labels: dict[str, int]) -> np.ndarray:
        unknown = sorted(set(labels) - set(self.categories))
        if unknown:
            raise ValueError(f"labels: categories {unknown} are not in the taxonomy")
        return np.asarray([labels.get(c, -1) for c in self.categories], dtype=np.float32)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        good, bad = prepare_records(batch["id"], batch["record"], self._prepare)
        if bad and self.quarantine_dir:
            write_quarantine(self.quarantine_dir, bad)
        batch_out = self.preprocessor.collate([item for _, (_, item) in good])
        batch_out["id"] = np.asarray([sample.id for sample, _ in good], dtype=object)
        batch_out["labels"] = np.stack([labels for _, (labels, _) in good]) if good else \
            np.zeros((0, len(self.categories)), np.float32)
        return batch_out

    def _prepare(self, sample: Sample) -> tuple[np.ndarray, dict]:
        # Labels first: a row whose labels are outside the taxonomy is quarantined before its media is read.
        labels = self.labels_vector(sample.labels)
        return labels, self.preprocessor.sample(sample, self.base_uri)
