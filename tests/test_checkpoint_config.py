"""The typed view of a checkpoint's config.json and the backbone registry."""

import json

import pytest

from minildm.backbones import BACKBONES, build_backbone, get_backbone, register_backbone
from minildm.checkpoint_config import CheckpointConfig, Distillation, TextEncoderRef
from minildm.checkpoints import build_model, checkpoint_dir, read_checkpoint_config
from minildm.names import KIND_BACKBONES
from minildm.nn import DiTConfig, DiTModel, UNetModel

SHIPPED = sorted(p.parent.name for p in checkpoint_dir().glob("*/config.json"))


@pytest.mark.parametrize("folder", SHIPPED)
def test_every_shipped_config_round_trips(folder):
    raw = json.loads((checkpoint_dir() / folder / "config.json").read_text())
    typed = read_checkpoint_config(checkpoint_dir() / folder)
    assert typed.to_dict() == raw
    assert typed.backbone in KIND_BACKBONES[typed.kind]


def test_the_records_of_the_distilled_student():
    typed = read_checkpoint_config(checkpoint_dir() / "lcm")
    assert (typed.kind, typed.backbone, typed.weights_dtype) == ("text2img", "unet", "float16")
    assert isinstance(typed.distillation, Distillation) and typed.distillation.steps == (1, 2, 4, 8)
    assert isinstance(typed.text_encoder, TextEncoderRef) and typed.text_encoder.clip_skip == 2
    assert read_checkpoint_config(checkpoint_dir() / "text2img").backbone == "dit"


def test_an_older_config_without_the_later_entries_still_reads():
    old = json.loads((checkpoint_dir() / "text2img_unet" / "config.json").read_text())
    old["text_encoder"].pop("clip_skip")  # written before clip_skip existed
    typed = CheckpointConfig.from_dict(old)
    assert typed.text_encoder.clip_skip == 0 and typed.weights_dtype == "float32"
    assert typed.distillation is None
    assert typed.to_dict() == old


def _text2img() -> dict:
    return json.loads((checkpoint_dir() / "text2img_unet" / "config.json").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(kind="gan"), "unknown checkpoint kind 'gan'"),
    (lambda c: c["model"].update(dit={}), r"'model' must hold one section.*\['dit', 'unet'\]"),
    (lambda c: c.update(model={"mlp": {}}), r"one of \['unet', 'dit'\] for a 'text2img' model"),
    (lambda c: c["text_encoder"].update(kind="t5"), "'text_encoder.kind' must be 'clip' or 'transformers'"),
    (lambda c: c["vae"].update(scale_factor=-1.0), "'vae.scale_factor' must be a number > 0"),
    (lambda c: c.update(weights_dtype="int8"), "'weights_dtype' must be float32 or float16"),
    (lambda c: c.update(distillation={"steps": [4, 0]}), r"'distillation.steps' must be a list of ints > 0"),
    (lambda c: c["text_encoder"].pop("model"), "has no 'text_encoder.model' section"),
])
def test_a_bad_config_names_the_file_and_the_entry(tmp_path, edit, message):
    config = _text2img()
    edit(config)
    with pytest.raises(ValueError, match=message):
        CheckpointConfig.from_dict(config, tmp_path)


def test_build_model_goes_through_the_registry():
    config = _text2img()
    assert type(build_model(config)) is UNetModel
    config["model"] = {"dit": DiTConfig(depth=1, hidden_size=32, num_heads=2).to_dict()}
    assert type(build_model(config)) is DiTModel


def test_the_registry():
    assert set(BACKBONES) == {b for names in KIND_BACKBONES.values() for b in names}
    assert type(build_backbone("dit", DiTConfig(depth=1, hidden_size=32, num_heads=2).to_dict())) is DiTModel
    with pytest.raises(ValueError, match=r"unknown backbone 'mamba'; expected one of \['mlp'"):
        get_backbone("mamba")
    with pytest.raises(ValueError, match="a backbone named 'unet' is registered already"):
        register_backbone("unet", DiTConfig, DiTModel)
