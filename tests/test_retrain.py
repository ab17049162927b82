"""``make checkpoints``: the training commands in dependency order, logs, and the quality table."""

import json
import sys
from pathlib import Path

import pytest

from minildm.names import CHECKPOINTS
from minildm.retrain import ORDER, _launch_order, main, train_argv

pytestmark = pytest.mark.slow  # training commands run in child processes

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "checkpoints"


def test_models_are_trained_after_what_they_are_trained_on(tmp_path):
    assert ORDER.index("vae") < ORDER.index("latent_ddpm") < ORDER.index("text2img")
    assert ORDER.index("clip") < ORDER.index("text2img_unet") < ORDER.index("lcm")
    lcm = train_argv("lcm", tmp_path, "cpu", None, resume=False)
    assert lcm[lcm.index("--teacher") + 1] == str(tmp_path / "checkpoints" / "text2img_unet")  # the U-Net's
    argv = train_argv("text2img", tmp_path, "gpu", None, resume=False)
    assert argv[:5] == [sys.executable, "-m", "minildm", "train", "text2img"]
    assert argv[argv.index("--vae") + 1] == str(tmp_path / "checkpoints" / "vae")
    assert argv[argv.index("--text-encoder") + 1] == str(tmp_path / "checkpoints" / "clip")
    assert "--overwrite" in argv and argv[argv.index("--preset") + 1] == "gpu"
    (tmp_path / "runs" / "vae").mkdir(parents=True)
    (tmp_path / "runs" / "vae" / "training_state.safetensors").write_bytes(b"")
    assert "--resume" in train_argv("vae", tmp_path, "cpu", None, resume=True)
    assert "--overwrite" in train_argv("toy2d", tmp_path, "cpu", None, resume=True)  # nothing to resume


def test_retraining_uses_the_options_the_shipped_checkpoints_were_trained_with(tmp_path):
    """Each record's options (minildm.names.CHECKPOINTS) against the shipped configs."""
    unet = train_argv("text2img_unet", tmp_path, "cpu", None, resume=False)
    lcm = train_argv("lcm", tmp_path, "cpu", None, resume=False)
    shipped = {kind: json.loads((SHIPPED / kind / "config.json").read_text())
               for kind in ("text2img", "text2img_unet", "lcm")}
    skip = shipped["text2img_unet"]["text_encoder"].get("clip_skip", 0)
    assert unet[unet.index("--clip-skip") + 1] == str(skip) == CHECKPOINTS["text2img_unet"].options[1]
    assert "unet" in shipped["text2img_unet"]["model"] and "--backbone" not in unet
    assert shipped["lcm"]["text_encoder"].get("clip_skip", 0) == skip  # the student reads its teacher's layer
    assert "unet" in shipped["lcm"]["model"]  # distilled from the U-Net, whose backbone it takes
    assert shipped["lcm"]["distillation"]["teacher"] == "data/checkpoints/text2img_unet"
    assert lcm[lcm.index("--consistency-loss") + 1] == shipped["lcm"]["distillation"]["loss"]
    assert "--clip-skip" not in train_argv("latent_ddpm", tmp_path, "cpu", None, resume=False)
    dit = train_argv("text2img", tmp_path, "cpu", None, resume=False)  # the default: lesson 11's DiT
    shipped_dit = shipped["text2img"]
    assert "dit" in shipped_dit["model"] and dit[dit.index("--backbone") + 1] == "dit"
    assert shipped_dit["text_encoder"]["clip_skip"] == int(dit[dit.index("--clip-skip") + 1]) == skip
    assert shipped_dit["steps_trained"] == int(dit[dit.index("--steps") + 1])
    assert shipped_dit["preset"] == "cpu" and "resumed" not in shipped_dit


@pytest.mark.parametrize("preset, steps", [("cpu", "24000"), ("gpu", "3000")])
def test_the_default_dit_is_retrained_for_twice_the_steps_of_the_unet(tmp_path, preset, steps):
    argv = train_argv("text2img", tmp_path, preset, None, resume=False)
    assert argv[4] == "text2img" and argv[argv.index("--backbone") + 1] == "dit"
    assert argv[argv.index("--run-dir") + 1] == str(tmp_path / "runs" / "text2img")
    assert argv[argv.index("--out") + 1] == str(tmp_path / "checkpoints" / "text2img")
    assert argv[argv.index("--vae") + 1] == str(tmp_path / "checkpoints" / "vae")
    assert argv[argv.index("--steps") + 1] == steps  # twice the preset's 12,000 (cpu) or 1,500 (gpu)
    unet = train_argv("text2img_unet", tmp_path, preset, None, resume=False)
    assert unet[4] == "text2img" and "--steps" not in unet and "--backbone" not in unet
    assert unet[unet.index("--out") + 1] == str(tmp_path / "checkpoints" / "text2img_unet")
    quick = train_argv("text2img", tmp_path, preset, None, resume=False, budget="quick")
    assert quick[quick.index("--steps") + 1] == "80"  # the quick budget's 40, twice


def test_retrain_writes_logs_checkpoints_and_the_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINILDM_DEVICE", "cpu")
    assert main(["--only", "toy2d", "--budget", "quick", "--out-dir", str(tmp_path), "--n", "200"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "checkpoints" / "toy2d" / "model.safetensors").is_file()
    assert "training toy2d" in (tmp_path / "logs" / "toy2d.log").read_text()
    assert "retrained 1 checkpoint(s) on cpu (cpu preset, 1 at once)" in out
    row = next(line for line in out.splitlines() if line.startswith("toy2d") and "near a peak" in line)
    assert row.split()[-1] == "200"


def test_a_failed_run_names_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILDM_DEVICE", "cpu")
    with pytest.raises(RuntimeError, match=r"training latent_ddpm failed .* see .*latent_ddpm\.log"):
        main(["--only", "latent_ddpm", "--budget", "quick", "--out-dir", str(tmp_path)])  # no VAE there


def test_parallel_runs_start_after_what_they_are_trained_on(tmp_path, capsys, monkeypatch):
    # what the text2img runs and lcm wait for start first; the other text2img run, long too, next
    assert _launch_order(list(ORDER)) == [
        "vae", "clip", "text2img_unet", "text2img", "toy2d", "pixel_ddpm", "latent_ddpm", "lcm"]
    assert _launch_order(["toy2d", "latent_ddpm"]) == ["toy2d", "latent_ddpm"]  # no VAE retrained here
    monkeypatch.setenv("MINILDM_DEVICE", "cpu")
    argv = ["--only", "toy2d", "vae", "latent_ddpm", "--budget", "quick", "--jobs", "2",
            "--out-dir", str(tmp_path), "--n", "8"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    events = [line.split("training ")[1].split(":")[0] if "training " in line else line.split()[0]
              for line in lines if "training " in line or line.endswith(" s") and " done in " in line]
    assert events[:2] == ["vae", "toy2d"]  # two at once
    assert events.index("latent_ddpm") > events.index("vae", 1)  # started after the VAE was done
    assert (tmp_path / "checkpoints" / "latent_ddpm" / "model.safetensors").is_file()
    with pytest.raises(SystemExit):
        main(["--jobs", "0", "--out-dir", str(tmp_path)])


def test_never_more_runs_at_once_than_jobs(tmp_path, monkeypatch):
    """Four runs free to start and --jobs 2: two at a time, the rest as those finish."""
    import minildm.retrain as retrain_module

    running, most = set(), [0]

    class Finished:
        def __init__(self, kind):
            self.kind, self.polls = kind, 0

        def poll(self):
            self.polls += 1
            if self.polls < 2:
                return None
            running.discard(self.kind)
            return 0

    def fake_start(kind, out, *args):
        running.add(kind)
        most[0] = max(most[0], len(running))
        (out / "logs" / f"{kind}.log").write_text("done\n")
        return Finished(kind), 0.0, out / "logs" / f"{kind}.log"

    monkeypatch.setattr(retrain_module, "_start_run", fake_start)
    monkeypatch.setattr(retrain_module.time, "sleep", lambda seconds: None)
    kinds = ["toy2d", "vae", "pixel_ddpm", "clip"]
    seconds = retrain_module.retrain(kinds, tmp_path, "cpu", None, False, jobs=2)
    assert sorted(seconds) == ["clip", "pixel_ddpm", "toy2d", "vae"] and most[0] == 2
