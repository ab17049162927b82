"""Training loop: exact resume, atomic checkpoints, clear errors for the wrong checkpoint."""

from dataclasses import replace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import minildm.checkpoints as ckpt
from minildm.checkpoints import build_model, load_pretrained
from minildm.nn import UNetConfig, UNetModel
from minildm.tasks import toy2d_task
from minildm.training import EMA, TrainConfig, TrainingDivergedError, lr_at, train

pytestmark = pytest.mark.slow  # real training loops, checkpoints written and resumed


def _toy(steps=20):
    task = toy2d_task("quick", seed=3)
    cfg = replace(task.train_config, steps=steps, batch_size=64, checkpoint_every=5, warmup_steps=4)
    return task, cfg


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values()])


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    task, cfg = _toy()
    full, full_ema, _ = train(
        task.model, task.loss, cfg, task.config, run_dir=tmp_path / "a", show_progress=False
    )

    task2, _ = _toy()
    train(
        task2.model, task2.loss, cfg, task2.config, run_dir=tmp_path / "b", stop_after=12, show_progress=False
    )
    assert ckpt.load_training_state(tmp_path / "b" / ckpt.STATE_NAME)["step"] == 12
    task3, _ = _toy()  # a fresh process would start from a freshly built model
    resumed, resumed_ema, result = train(
        task3.model, task3.loss, cfg, task3.config, run_dir=tmp_path / "b", resume=True, show_progress=False
    )
    assert result.steps_done == 8
    assert torch.equal(_flat(full), _flat(resumed))
    assert all(torch.equal(full_ema.shadow[k], resumed_ema.shadow[k]) for k in full_ema.shadow)

    # resuming a finished run trains nothing but writes its checkpoint with the current config,
    # where a sampling setting was corrected (recorded as a change)
    task4, _ = _toy()
    config = dict(task4.config, scheduler=dict(task4.config["scheduler"], clip_sample=True))
    _, ema4, again = train(task4.model, task4.loss, cfg, config, run_dir=tmp_path / "b",
                           out_dir=tmp_path / "out", resume=True, show_progress=False)
    assert again.steps_done == 0
    written = ckpt.read_config(tmp_path / "out")
    assert written["scheduler"]["clip_sample"] is True and written["steps_trained"] == 20
    assert written["resumed"] == [{"at_step": 20, "changed": {"scheduler.clip_sample": [False, True]}}]
    model, _, _ = load_pretrained("toy2d", tmp_path / "out")
    assert all(torch.equal(model.state_dict()[k], full_ema.shadow[k]) for k in full_ema.shadow)


def test_loss_falls_and_checkpoint_loads(tmp_path):
    task, cfg = _toy(steps=150)
    _, ema, result = train(
        task.model, task.loss, cfg, task.config, out_dir=tmp_path / "out", show_progress=False
    )
    assert sum(result.losses[-20:]) / 20 < 0.7 * sum(result.losses[:5]) / 5
    model, scheduler, config = load_pretrained("toy2d", tmp_path / "out")
    assert config["steps_trained"] == 150 and config["training"]["steps"] == 150
    assert torch.equal(model.state_dict()["net.0.weight"], ema.shadow["net.0.weight"])
    assert not model.training and scheduler.config.num_train_timesteps == 1000


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 2)
    ckpt.save_model(tmp_path, model.state_dict(), {"kind": "x"})
    before = (tmp_path / ckpt.WEIGHTS_NAME).read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_model(tmp_path, torch.nn.Linear(2, 2).state_dict(), {"kind": "x"})
    assert (tmp_path / ckpt.WEIGHTS_NAME).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.CONFIG_NAME, ckpt.WEIGHTS_NAME]


def test_checkpoint_for_another_model_is_refused(tmp_path):
    small = UNetConfig(model_channels=16, channel_mult=(1, 2), attention_levels=(1,))
    config = {"kind": "pixel_ddpm", "model": {"unet": small.to_dict()}, "scheduler": {}}
    ckpt.save_model(tmp_path, UNetModel(small).state_dict(), config)
    with pytest.raises(ValueError, match="holds a 'pixel_ddpm' model, expected 'toy2d'"):
        load_pretrained("toy2d", tmp_path)
    other = UNetModel(UNetConfig(model_channels=32, channel_mult=(1, 2), attention_levels=(1,)))
    with pytest.raises(ValueError, match="does not fit this model configuration.*other shapes"):
        ckpt.load_weights(tmp_path, other)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_pretrained("toy2d", tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown checkpoint kind 'gan'"):
        build_model({"kind": "gan"})
    with pytest.raises(ValueError, match="has no 'model' section"):
        build_model({"kind": "vae"})


def test_resume_refuses_another_task(tmp_path):
    task, cfg = _toy(steps=5)
    train(task.model, task.loss, cfg, task.config, run_dir=tmp_path, show_progress=False)
    other = dict(task.config, kind="pixel_ddpm")
    with pytest.raises(ValueError, match="cannot resume"):
        train(task.model, task.loss, cfg, other, run_dir=tmp_path, resume=True, show_progress=False)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(
            task.model,
            task.loss,
            cfg,
            task.config,
            run_dir=tmp_path / "new",
            resume=True,
            show_progress=False,
        )


def test_ema_and_schedule():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=10_000)
    assert ema.shadow["weight"].item() == pytest.approx(0.1)
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) == pytest.approx(0.1, abs=1e-3)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        TrainConfig(steps=0)


# ------------------------------------------------------------------ nothing lost, nothing silently wrong


def test_a_run_that_diverges_keeps_the_good_checkpoint(tmp_path):
    task, cfg = _toy(steps=10)
    train(task.model, task.loss, cfg, task.config, run_dir=tmp_path / "run", out_dir=tmp_path / "out",
          show_progress=False)
    state = (tmp_path / "run" / ckpt.STATE_NAME).read_bytes()
    weights = (tmp_path / "out" / ckpt.WEIGHTS_NAME).read_bytes()

    def nan_loss(model, generator, batch_size):
        return task.loss(model, generator, batch_size) * float("nan")

    task2, _ = _toy(steps=10)
    with pytest.raises(TrainingDivergedError, match="the loss became nan at step 0"):
        train(task2.model, nan_loss, cfg, task2.config, run_dir=tmp_path / "run", out_dir=tmp_path / "out",
              overwrite=True, show_progress=False)
    # weights that overflow while the loss still looks fine: caught before a checkpoint is written
    task3, _ = _toy(steps=10)

    def overflowing(model, generator, batch_size):
        loss = task3.loss(model, generator, batch_size)
        with torch.no_grad():
            next(model.parameters()).fill_(float("inf"))
        return loss

    with pytest.raises(TrainingDivergedError, match="the model after step 1 holds NaN or infinite"):
        train(task3.model, overflowing, replace(cfg, checkpoint_every=1), task3.config,
              run_dir=tmp_path / "run", out_dir=tmp_path / "out", overwrite=True, show_progress=False)
    assert (tmp_path / "run" / ckpt.STATE_NAME).read_bytes() == state
    assert (tmp_path / "out" / ckpt.WEIGHTS_NAME).read_bytes() == weights


def test_a_damaged_training_state_is_not_resumed(tmp_path):
    task, cfg = _toy(steps=5)
    train(task.model, task.loss, cfg, task.config, run_dir=tmp_path, show_progress=False)
    path = str(tmp_path / ckpt.STATE_NAME)
    with safe_open(path, framework="pt") as f:  # damage one weight, keep the rest of the file
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    tensors["model.net.0.weight"][0, 0] = float("nan")
    save_file(tensors, path, metadata=metadata)
    task2, _ = _toy()
    with pytest.raises(TrainingDivergedError, match="training state .* holds NaN or infinite values"):
        train(task2.model, task2.loss, cfg, task2.config, run_dir=tmp_path, resume=True, show_progress=False)


def test_a_new_run_does_not_replace_a_training_state(tmp_path):
    task, cfg = _toy(steps=5)
    train(task.model, task.loss, cfg, task.config, run_dir=tmp_path, show_progress=False)
    before = (tmp_path / ckpt.STATE_NAME).read_bytes()
    with pytest.raises(FileExistsError, match="already holds a training state: continue it with --resume"):
        train(task.model, task.loss, cfg, task.config, run_dir=tmp_path, show_progress=False)
    assert (tmp_path / ckpt.STATE_NAME).read_bytes() == before
    train(task.model, task.loss, cfg, task.config, run_dir=tmp_path, overwrite=True, show_progress=False)


def test_resume_with_other_settings_is_refused_or_recorded(tmp_path):
    task, cfg = _toy(steps=5)
    train(task.model, task.loss, cfg, task.config, run_dir=tmp_path, show_progress=False)
    changes = [({"seed": 4}, "training.seed: 3 -> 4"), ({"batch_size": 8}, "training.batch_size: 64 -> 8"),
               ({"weight_decay": 0.1}, "training.weight_decay")]
    for change, text in changes:
        task2, _ = _toy()
        with pytest.raises(ValueError, match=f"with other settings than the run used .*{text}"):
            train(task2.model, task2.loss, replace(cfg, **change), task2.config, run_dir=tmp_path,
                  resume=True, show_progress=False)
    other_data = dict(task.config, data=dict(task.config["data"], n=10))
    with pytest.raises(ValueError, match="data: "):
        train(task.model, task.loss, cfg, other_data, run_dir=tmp_path, resume=True, show_progress=False)
    # more steps: allowed, and recorded in the config of the state and the checkpoint
    task3, _ = _toy()
    train(task3.model, task3.loss, replace(cfg, steps=8), task3.config, run_dir=tmp_path,
          out_dir=tmp_path / "out", resume=True, show_progress=False)
    written = ckpt.read_config(tmp_path / "out")
    assert written["resumed"] == [{"at_step": 5, "changed": {"training.steps": [5, 8]}}]
    assert ckpt.load_training_state(tmp_path / ckpt.STATE_NAME)["config"]["resumed"] == written["resumed"]
    # a lower learning rate (after a divergence): allowed, and recorded
    task4, _ = _toy()
    train(task4.model, task4.loss, replace(cfg, steps=9, lr=cfg.lr / 10), task4.config, run_dir=tmp_path,
          out_dir=tmp_path / "out", resume=True, show_progress=False)
    assert ckpt.read_config(tmp_path / "out")["resumed"][-1] == {
        "at_step": 8, "changed": {"training.steps": [8, 9], "training.lr": [cfg.lr, cfg.lr / 10]}}


@pytest.mark.parametrize("lr", [0.0, -1e-4, float("nan"), float("inf"), "1e-4", True])
def test_the_learning_rate_is_a_positive_finite_float(lr):
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        TrainConfig(lr=lr)


def test_load_pretrained_takes_a_shipped_folder_by_name():
    """``lcm`` and ``text2img_unet`` hold text2img models: their folder names load them, as the kind
    loads ``data/checkpoints/text2img``; an unknown name lists the kinds and the shipped folders."""
    for name in ("lcm", "text2img_unet"):
        model, scheduler, config = load_pretrained(name)
        by_path, _, _ = load_pretrained("text2img", ckpt.checkpoint_dir() / name)
        assert config["kind"] == "text2img" and scheduler is not None
        pairs = zip(model.state_dict().values(), by_path.state_dict().values())
        assert all(torch.equal(a, b) for a, b in pairs)
    with pytest.raises(ValueError, match="or a shipped folder .*lcm.*text2img_unet"):
        load_pretrained("nope")
