"""Encoders (contract over every registry entry), the fusion head over every modality subset, the model."""

from __future__ import annotations

import itertools

import numpy as np

import pytest
import torch

from tripwire.data.sample import MODALITIES
from tripwire.model import ENCODERS, FUSION_HEADS, build_model
from tripwire.model.safety_model import build_encoder
from tripwire.policy import Taxonomy

from helpers import TINY_TEXT

# Small constructor arguments and an input builder for each registered encoder. A new registry entry
# without an entry here fails test_every_encoder_has_contract_args.
ENCODER_ARGS = {
    "hf_text": TINY_TEXT,
    "timm": {"model_name": "test_resnet"},
    "audio_cnn": {"channels": [4, 8], "out_dim": 16},
    "frame_pool": {},
    "video_cnn": {"channels": [4, 8], "out_dim": 16},
}


def example_input(modality: str, n: int = 3):
    torch.manual_seed(0)
    if modality == "text":
        ids = torch.randint(1000, 2000, (n, 12))
        mask = torch.ones_like(ids)
        mask[0, 6:] = 0
        return {"input_ids": ids, "attention_mask": mask}
    return {"image": torch.randn(n, 3, 32, 32), "audio": torch.randn(n, 1, 16, 50),
            "video": torch.randn(n, 4, 3, 32, 32)}[modality]


def make(name: str):
    image = build_encoder("timm", ENCODER_ARGS["timm"], {})
    return build_encoder(name, ENCODER_ARGS[name], {"image": image})


def test_every_encoder_has_contract_args():
    assert set(ENCODERS.names()) == set(ENCODER_ARGS)


@pytest.mark.parametrize("name", sorted(ENCODER_ARGS))
def test_encoder_contract(name):
    encoder = make(name).eval()
    assert encoder.modality in MODALITIES and encoder.out_dim > 0
    with torch.no_grad():
        out = encoder(example_input(encoder.modality))
    assert out.shape == (3, encoder.out_dim) and torch.isfinite(out).all()
    # export_args rebuilds the same architecture: weights load strictly and outputs match.
    rebuilt = build_encoder(name, encoder.export_args(), {"image": getattr(encoder, "frame_encoder", None)}).eval()
    rebuilt.load_state_dict(encoder.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt(example_input(encoder.modality)), out)


@pytest.mark.parametrize("name", sorted(ENCODER_ARGS))
def test_frozen_encoder_has_no_trainable_params(name):
    args = {**ENCODER_ARGS[name], "trainable": False}
    image = build_encoder("timm", ENCODER_ARGS["timm"], {})
    encoder = build_encoder(name, args, {"image": image})
    own = encoder.own_state_dict() if hasattr(encoder, "own_state_dict") else dict(encoder.named_parameters())
    params = [p for n, p in encoder.named_parameters() if n in own]
    assert params and not any(p.requires_grad for p in params)


def test_text_pooling_ignores_padding():
    encoder = make("hf_text").eval()
    x = example_input("text", 1)
    x["attention_mask"][0, 6:] = 0
    changed = {"input_ids": x["input_ids"].clone(), "attention_mask": x["attention_mask"]}
    changed["input_ids"][0, 8:] = 5
    with torch.no_grad():
        assert torch.allclose(encoder(x), encoder(changed), atol=1e-6)


@pytest.fixture(scope="module")
def fusion():
    head = FUSION_HEADS.get("attention")({"text": 8, "image": 6, "audio": 4, "video": 6}, num_categories=5,
                                         d_model=16, num_heads=2, dropout=0.0)
    return head.eval()


def embeddings(n=4):
    torch.manual_seed(1)
    return {"text": torch.randn(n, 8), "image": torch.randn(n, 6), "audio": torch.randn(n, 4), "video": torch.randn(n, 6)}


@pytest.mark.parametrize("subset", [s for r in range(1, 5) for s in itertools.combinations(MODALITIES, r)])
def test_fusion_every_subset(fusion, subset):
    emb = {m: e for m, e in embeddings().items() if m in subset}
    with torch.no_grad():
        logits = fusion(emb)
    assert logits.shape == (4, 5) and torch.isfinite(logits).all()


def test_fusion_masks_absent_modalities_instead_of_zero_filling(fusion):
    emb = embeddings()
    present = {m: torch.tensor([True, True, False, False]) if m == "image" else torch.ones(4, dtype=torch.bool)
               for m in emb}
    noisy = dict(emb, image=emb["image"].clone())
    noisy["image"][2:] = 1e3  # garbage in absent rows must not matter
    with torch.no_grad():
        a, b = fusion(emb, present), fusion(noisy, present)
        without = fusion({m: e for m, e in emb.items() if m != "image"})
    assert torch.allclose(a[2:], b[2:]) and not torch.allclose(a[:2], without[:2])
    assert torch.allclose(a[2:], without[2:], atol=1e-6)


def test_fusion_checks_keys_and_shapes(fusion):
    with pytest.raises(KeyError, match="unknown modalities"):
        fusion({"smell": torch.randn(2, 3)})
    with pytest.raises(ValueError, match="expected"):
        fusion({"text": torch.randn(2, 7)})
    with pytest.raises(ValueError, match="batch size"):
        fusion({"text": torch.randn(2, 8), "image": torch.randn(3, 6)})


def test_fusion_attribution_is_zero_for_absent_rows(fusion):
    emb = embeddings()
    present = {m: torch.ones(4, dtype=torch.bool) for m in emb}
    present["audio"] = torch.tensor([True, False, True, False])
    attribution = fusion.modality_attribution(emb, present)
    assert set(attribution) == set(emb)
    assert torch.all(attribution["audio"][[1, 3]] == 0)


def test_fused_scores_and_attribution_share_one_full_forward(fusion):
    from tripwire.moderation.scoring import fuse_batch

    emb = embeddings()
    requests = [{m: e[i].numpy() for m, e in emb.items()} for i in range(4)]
    requests[1].pop("audio")
    forwards, embed = [], fusion.embed

    def counted(*args, **kwargs):
        forwards.append(1)
        return embed(*args, **kwargs)

    fusion.embed = counted  # every pass (forward included) goes through embed, which hooks would not see
    fused = fuse_batch(fusion, requests)
    del fusion.embed
    assert len(forwards) == 1 + len(emb)  # all modalities once, then each one left out; not the full pass twice
    present = {m: torch.tensor([m in r for r in requests]) for m in emb}
    stacked = {m: torch.stack([torch.as_tensor(r.get(m, np.zeros(e.shape[1], np.float32))) for r in requests])
               for m, e in emb.items()}
    reference = fusion.modality_attribution(stacked, present)  # computes its own full pass
    expected_scores = torch.sigmoid(fusion(stacked, present)).detach().numpy()
    expected_embedding = fusion.embed(stacked, present).detach().numpy()
    for i, row in enumerate(fused):
        assert np.allclose(row["scores"], expected_scores[i], atol=1e-6)
        assert np.allclose(row["embedding"], expected_embedding[i], atol=1e-6)
        for m, a in row["attribution"].items():
            assert np.allclose(a, reference[m][i].numpy(), atol=1e-6)


def test_model_runs_encoders_only_on_present_rows(tiny_model_config):
    model = build_model(tiny_model_config, Taxonomy.load().names).eval()
    calls = {}
    for modality, encoder in model.encoders.items():
        encoder.register_forward_hook(lambda mod, inp, out, m=modality: calls.setdefault(m, []).append(out.shape[0]))
    n = 3
    inputs = {m: example_input(m, n) for m in MODALITIES}
    present = {"text": torch.tensor([True, False, True]), "image": torch.tensor([False, False, True]),
               "audio": torch.zeros(n, dtype=torch.bool), "video": torch.tensor([False, True, False])}
    with torch.no_grad():
        logits = model(inputs, present)
    assert logits.shape == (n, len(Taxonomy.load().names))
    assert calls["text"] == [2] and "audio" not in calls and calls["video"] == [1]
    assert sorted(calls["image"]) == [1, 4]  # one image + the video's 4 frames through the shared encoder


def test_model_config_validation(tiny_model_config):
    import dataclasses

    from tripwire.common.config import ConfigError, from_dict
    from tripwire.model import ModelConfig

    with pytest.raises(ConfigError, match="encoders: unknown modalities"):
        dataclasses.replace(tiny_model_config, encoders={"smell": tiny_model_config.encoders["text"]})
    with pytest.raises(ConfigError, match="encodes image, not text"):
        from_dict(ModelConfig, {"encoders": {"text": {"name": "timm"}}})
    with pytest.raises(ConfigError, match="configure encoders.image"):
        from_dict(ModelConfig, {"encoders": {"video": {"name": "frame_pool"}}})


def test_param_groups_give_encoders_their_own_learning_rate(tiny_model_config):
    from tripwire.common.config import ConfigError
    from tripwire.training.config import FitConfig
    from tripwire.training.loop import param_groups

    model = build_model(tiny_model_config, Taxonomy.load().names)
    groups = {g["name"]: g for g in param_groups(model, FitConfig(lr=1e-3, encoder_lr={"text": 3e-5}))}
    assert groups["text"]["lr"] == 3e-5 and groups["default"]["lr"] == 1e-3
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert len(ids) == len(set(ids)) == len([p for p in model.parameters() if p.requires_grad])
    with pytest.raises(ConfigError, match="no encoders"):
        param_groups(model, FitConfig(encoder_lr={"smell": 1e-4}))


def test_lr_schedule_warms_up_then_decays():
    from tripwire.training.config import FitConfig
    from tripwire.training.loop import lr_factor

    fit = FitConfig(epochs=4, lr_schedule="cosine", warmup_steps=10)
    assert lr_factor(fit, 0, 0) == pytest.approx(0.1)
    assert lr_factor(fit, 0, 50) == pytest.approx(1.0)
    assert lr_factor(fit, 2, 500) == pytest.approx(0.5)
    assert lr_factor(FitConfig(), 3, 0) == 1.0


def test_early_stopping_rule():
    from tripwire.training.loop import should_stop

    assert not should_stop([0.5, 0.6, 0.7], patience=2)
    assert should_stop([0.5, 0.7, 0.69, 0.7], patience=2)
    assert not should_stop([0.5, 0.7, 0.69, 0.71], patience=2)
    assert not should_stop([0.5, 0.4, 0.3], patience=0)


def test_text_encoder_ignores_padding_columns():
    """Trimming all-padding columns (speed) must not change the embedding beyond rounding."""
    encoder = make("hf_text").eval()
    x = example_input("text", n=3)
    x["attention_mask"][:, 9:] = 0  # every row padded past column 9
    padded = {"input_ids": torch.cat([x["input_ids"], torch.zeros(3, 20, dtype=torch.long)], 1),
              "attention_mask": torch.cat([x["attention_mask"], torch.zeros(3, 20, dtype=torch.long)], 1)}
    with torch.no_grad():
        short, long = encoder(x), encoder(padded)
    torch.testing.assert_close(short, long, atol=1e-5, rtol=1e-5)


def test_trim_padding_keeps_the_longest_row_and_left_padding():
    from tripwire.model.encoders import trim_padding

    ids = torch.arange(12).reshape(2, 6)
    right = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]])
    assert trim_padding(ids, right)[0].shape == (2, 3)
    left = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1]])
    assert trim_padding(ids, left)[0].shape == (2, 6)  # left padding: nothing trailing to drop
    assert trim_padding(ids, torch.zeros(2, 6, dtype=torch.long))[0].shape == (2, 1)


def test_mixed_precision_only_on_gpu_and_validated():
    from tripwire.common.config import ConfigError
    from tripwire.training.config import FitConfig
    from tripwire.training.loop import autocast_dtype

    assert autocast_dtype(FitConfig(mixed_precision="bf16"), torch.device("cpu")) is None
    assert autocast_dtype(FitConfig(mixed_precision="bf16"), torch.device("cuda")) is torch.bfloat16
    assert autocast_dtype(FitConfig(mixed_precision="fp16"), torch.device("cuda")) is torch.float16
    assert autocast_dtype(FitConfig(), torch.device("cuda")) is None
    with pytest.raises(ConfigError, match="mixed_precision"):
        FitConfig(mixed_precision="fp8")


def test_audio_time_profile_points_at_the_loud_stretch():
    """The audio evidence: a burst late in the clip moves the top window there; embeddings are unchanged."""
    from tripwire.moderation.scoring import encode_batch, top_time_window

    encoder = make("audio_cnn").eval()
    quiet = torch.full((2, 1, 16, 64), -4.0)
    quiet[1, :, :, 48:56] = 4.0  # a burst in frames 48-55 of the second clip
    with torch.no_grad():
        embedding, profile = encoder.forward_with_time_profile(quiet)
        torch.testing.assert_close(embedding, encoder(quiet))
    assert profile.shape == (2, 64 // 4) and torch.allclose(profile.sum(1), torch.ones(2))
    both = encode_batch(encoder, "audio", list(quiet.numpy()))
    window = top_time_window(both[1]["time_profile"], 64, hop_length=160, sample_rate=16000, clip_seconds=0.64)
    assert 0.44 <= window["start_s"] <= 0.52 and window["end_s"] - window["start_s"] == pytest.approx(0.04)
    np.testing.assert_allclose(both[1]["embedding"], embedding[1].numpy(), atol=1e-6)


def _frozen_text(config):
    import dataclasses

    from tripwire.model.safety_model import ComponentConfig

    text = ComponentConfig("hf_text", {**TINY_TEXT, "trainable": False})
    return dataclasses.replace(config, encoders={**config.encoders, "text": text})


def test_unused_parameters_are_those_no_forward_pass_reaches(tiny_model_config):
    from tripwire.training.loop import unused_parameters

    # A trainable BERT mean-pools its tokens: its pooler is never reached, so DDP must look for unused ones.
    model = build_model(tiny_model_config, Taxonomy.load().names)
    unused = unused_parameters(model, tiny_model_config.preprocessing)
    assert unused and all(name.startswith("encoders.text.backbone.pooler.") for name in unused), unused
    assert all(p.grad is None for p in model.parameters()) and model.training  # the probe leaves no trace
    # Frozen text (the demo's MiniLM): every trainable parameter is reached.
    frozen = build_model(_frozen_text(tiny_model_config), Taxonomy.load().names)
    assert unused_parameters(frozen, tiny_model_config.preprocessing) == []


def test_a_batch_without_a_modality_still_reaches_its_encoder_in_training(tiny_model_config):
    config = _frozen_text(tiny_model_config)
    model = build_model(config, Taxonomy.load().names)
    n = 3
    inputs = {m: example_input(m, n) for m in MODALITIES}
    present = {"text": torch.ones(n, dtype=torch.bool), "image": torch.ones(n, dtype=torch.bool),
               "audio": torch.zeros(n, dtype=torch.bool), "video": torch.zeros(n, dtype=torch.bool)}
    torch.manual_seed(0)
    model.train()
    model(inputs, present).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(float(p.grad.abs().sum()) == 0.0 for p in model.encoders["audio"].parameters())
    # Scores are unchanged by it: eval mode gives the same logits with and without training-mode bookkeeping.
    model.eval()
    with torch.no_grad():
        plain = model(inputs, present)
    with torch.enable_grad():
        model.training = True  # the bookkeeping branch, without dropout (the head's dropout is 0)
        model.fusion.training = False
        tied = model.encode(inputs, present)
        model.training = False
    assert torch.equal(model.fusion(tied, present), plain)


def test_a_training_batch_with_one_item_of_a_modality_trains_its_batch_norm_encoder(tiny_model_config):
    """test_resnet has batch norm, which has no batch statistics for one row: that row is normalised with the
    running statistics, the encoder still learns from it, and the layers are back in training mode after."""
    model = build_model(tiny_model_config, Taxonomy.load().names).train()
    n = 3
    inputs = {m: example_input(m, n) for m in MODALITIES}
    present = {"text": torch.ones(n, dtype=torch.bool), "image": torch.tensor([False, True, False]),
               "audio": torch.zeros(n, dtype=torch.bool), "video": torch.zeros(n, dtype=torch.bool)}
    norms = [m for m in model.encoders["image"].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.training for m in norms)
    before = norms[0].running_mean.clone()
    model(inputs, present).sum().backward()
    assert all(m.training for m in norms) and torch.equal(norms[0].running_mean, before)  # not updated by one row
    assert float(next(model.encoders["image"].parameters()).grad.abs().sum()) > 0
    present["image"] = torch.tensor([True, True, False])  # two rows: batch statistics, running ones updated
    model(inputs, present).sum().backward()
    assert not torch.equal(norms[0].running_mean, before)


def test_ddp_without_find_unused_parameters_trains_on_batches_lacking_a_modality(tiny_model_config, tmp_path):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from tripwire.training.loop import unused_parameters

    config = _frozen_text(tiny_model_config)
    model = build_model(config, Taxonomy.load().names)
    assert unused_parameters(model, config.preprocessing) == []
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(model, find_unused_parameters=False)
        optimizer = torch.optim.SGD([p for p in ddp.parameters() if p.requires_grad], lr=0.01)
        n = 3
        inputs = {m: example_input(m, n) for m in MODALITIES}
        for absent in ("audio", "video", "image", None):  # each step lacks another modality
            present = {m: torch.tensor([m != absent] * n) for m in MODALITIES}
            optimizer.zero_grad()
            ddp(inputs, present).sum().backward()
            optimizer.step()
    finally:
        dist.destroy_process_group()
