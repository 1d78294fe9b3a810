"""Shared fixtures. Small synthetic corpora and tiny models keep the unit tests fast and offline."""

from __future__ import annotations

import os

import pytest

from helpers import TINY_TEXT, on_own_cluster, on_session_ray

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A 48-item synthetic corpus with every modality (real PNG/JPEG, WAV/FLAC, MP4/WebM files)."""
    from tripwire.data.synthetic import CorpusSpec, generate_corpus

    out = tmp_path_factory.mktemp("corpus")
    return generate_corpus(out, CorpusSpec(num_items=48, seed=11, image_size=32))


@pytest.fixture(scope="session")
def tiny_model_config():
    from tripwire.model.encoders import minilm_dir
    from tripwire.model.safety_model import ComponentConfig, ModelConfig
    from tripwire.data.preprocess import (AudioPreprocessing, ImagePreprocessing, PreprocessingConfig, TextPreprocessing,
                                     VideoPreprocessing)

    return ModelConfig(
        encoders={"text": ComponentConfig("hf_text", TINY_TEXT),
                  "image": ComponentConfig("timm", {"model_name": "test_resnet"}),
                  "audio": ComponentConfig("audio_cnn", {"channels": [4, 8], "out_dim": 16}),
                  "video": ComponentConfig("frame_pool")},
        fusion=ComponentConfig("attention", {"d_model": 16, "num_heads": 2, "dropout": 0.0}),
        preprocessing=PreprocessingConfig(text=TextPreprocessing(tokenizer=minilm_dir(), max_length=16),
                                          image=ImagePreprocessing(size=32), audio=AudioPreprocessing(n_mels=16),
                                          video=VideoPreprocessing(num_frames=4)),
    )


# -- ``make test`` runs two pytest-xdist workers (``-n 2``): every test on the session's Ray goes to one of them,
# in the order tests/integration/conftest.py gives; the other takes the unit tests and the integration tests
# that need no Ray meanwhile, then the tests on a cluster of their own (they wait for the session's model).
# (xdist's own ``--dist loadgroup`` groups nothing under pytest 9.2, marks or not.)
SESSION_RAY, OWN_CLUSTER_SCOPE = "session-ray", "own-cluster"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SessionRayOnOneWorker(LoadScopeScheduling):
        """One scope for the tests on the session's Ray (in their collection order), given out first; one for
        the tests on a cluster of their own, given out last; one per other file (a module's tests may share a
        module-scoped server, as the reviewer app's browser tests do)."""

        def _split_scope(self, nodeid: str) -> str:
            if on_session_ray(nodeid):
                return SESSION_RAY
            return OWN_CLUSTER_SCOPE if on_own_cluster(nodeid) else nodeid.split("::", 1)[0]

        def _assign_work_unit(self, node) -> None:
            scopes = list(self.workqueue)
            first = SESSION_RAY if SESSION_RAY in scopes else next(
                (scope for scope in scopes if scope != OWN_CLUSTER_SCOPE), scopes[0])
            self.workqueue.move_to_end(first, last=False)
            super()._assign_work_unit(node)

    return SessionRayOnOneWorker(config, log)


# -- a throwaway PostgreSQL server (tests/pg_server.py): one per session, a fresh database per test
@pytest.fixture(scope="session")
def postgres_url():
    """The session's PostgreSQL server URL (database ``postgres``); skips where the server is not installed."""
    from pg_server import SKIP_REASON, find_postgres_bin, postgres_server

    if find_postgres_bin() is None:
        pytest.skip(SKIP_REASON)
    with postgres_server(fast=True) as url:
        yield url


@pytest.fixture
def pg_database(postgres_url):
    """A fresh, empty database on the session's server (``t_<uuid>``): its URL."""
    import uuid

    from pg_server import create_database

    return create_database(postgres_url, f"t_{uuid.uuid4().hex}")
