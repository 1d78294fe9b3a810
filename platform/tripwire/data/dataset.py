"""Manifests as Ray Data datasets, as the training and scan jobs read them."""

from __future__ import annotations

import logging

from tripwire.data.sample import to_records

# Reading and filtering manifest rows is light work: fractional CPUs keep it from starving beside training.
LIGHT_TASK_CPUS = 0.25


def read_manifest_dataset(uri: str):
    """A manifest as a stream of ``{"id", "record"}`` rows (see :func:`tripwire.data.sample.to_records`)."""
    import ray.data

    if uri.endswith(".parquet"):
        table = ray.data.read_parquet(uri, num_cpus=LIGHT_TASK_CPUS)
        return table.map_batches(lambda t: to_records(t.to_pylist()), batch_format="pyarrow", num_cpus=LIGHT_TASK_CPUS)
    lines = ray.data.read_text(uri, drop_empty_lines=True, num_cpus=LIGHT_TASK_CPUS)
    return lines.map_batches(lambda b: to_records(list(b["text"])), batch_format="numpy", num_cpus=LIGHT_TASK_CPUS)


def quiet_data_progress() -> None:
    """Ray Data's per-operator progress bars and INFO lines flood logs; the jobs print their own progress."""
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    DataContext.get_current().print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": we know
    # Its high-memory detector repeats a dozen-line warning every 30 s about the preprocessing tasks' ~700 MB (the
    # tokenizer, mel filters and decoders); reserving that memory instead slowed the tests' scans (one from 11 s to 24 s).
    DataContext.get_current().issue_detectors_config.high_memory_detector_config.detection_time_interval_s = -1
