"""Bad input, as a hostile but realistic user gives it: each row is refused with a clear error,
nothing is lost, and the command line says it in one line, without a traceback."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from minildm.checkpoints import CONFIG_NAME, WEIGHTS_NAME, checkpoint_dir, load_pretrained, load_vae
from minildm.cli import main
from minildm.metrics import judge
from minildm.pipelines import TextToImagePipeline
from minildm.utils import save_figure, to_uint8
from minildm.validation import check_seed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_progress_bars(monkeypatch):
    """Progress bars write to stderr too; what is checked here is the error's one line."""
    monkeypatch.setenv("MINILDM_PROGRESS", "0")


@pytest.fixture(scope="module")
def pipe():
    return TextToImagePipeline.from_pretrained(device="cpu")


def _copy_checkpoint(kind: str, to: Path) -> Path:
    shutil.copytree(checkpoint_dir() / kind, to / kind)
    return to / kind


# ------------------------------------------------------------------ the API: value -> error text

API_CASES = [
    ("judge caption None", lambda: judge(np.zeros((32, 32, 3), np.uint8), None), "caption must be a str"),
    ("load_pretrained(None)", lambda: load_pretrained(None), r"unknown checkpoint kind None; expected"),
    ("load_pretrained bogus", lambda: load_pretrained("bogus"), r"'bogus'; expected one of \['toy2d'"),
    ("negative seed", lambda: check_seed("seed", -1), r"seed must be an int in \[0, 2\*\*63 - 1\], got -1"),
    ("huge seed", lambda: check_seed("seed", 2**70), r"seed must be an int in \[0, 2\*\*63 - 1\]"),
    ("float seed", lambda: check_seed("seed", 1.5), "seed must be an int"),
    ("NaN image", lambda: to_uint8(torch.full((3, 4, 4), float("nan"))), "the images hold NaN or infinite"),
]


@pytest.mark.parametrize("name, call, message", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_refuses(name, call, message):
    with pytest.raises(ValueError, match=message):
        call()


PIPE_CASES = [
    ("guidance as a str", dict(guidance_scale="3"), "guidance_scale must be a finite number"),
    ("guidance inf", dict(guidance_scale=float("inf")), "guidance_scale must be a finite number >= 1"),
    ("guidance overflows", dict(guidance_scale=1e30), "the sampled latents .* hold NaN or infinite"),
    ("seed -1", dict(seed=-1), "seed must be an int"),
    ("eta for DDIM out of range", dict(eta=1.5), r"eta must be a float in \[0, 1\]"),
]


@pytest.mark.parametrize("name, kwargs, message", PIPE_CASES, ids=[c[0] for c in PIPE_CASES])
def test_pipeline_refuses(pipe, name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipe(["a red circle"], 2, progress=False, **kwargs)


def test_encode_image_checks_at_the_door(pipe):
    good = torch.zeros(2, 3, 32, 32)
    cases = [
        (good * 0 + 200.0, r"values in \[-1, 1\], got values from 200 to 200"),
        (good.to(torch.uint8), "float tensor in \\[-1, 1\\], got dtype torch.uint8 .*from_uint8"),
        (np.zeros((2, 3, 32, 32), np.float32), "must be a torch tensor .* got ndarray"),
        (torch.zeros(3, 32, 32), r"shape \(B, 3, H, W\), got \(3, 32, 32\)"),
        (good * float("nan"), "the images hold NaN"),
    ]
    for images, message in cases:
        with pytest.raises(ValueError, match=message):
            pipe.encode_image(images)
    # float64 is another float: accepted, computed in the VAE's dtype
    assert pipe.encode_image(good.double()).dtype == torch.float32


# ------------------------------------------------------------------ damaged files name themselves


def test_damaged_checkpoints_are_named(tmp_path):
    folder = _copy_checkpoint("vae", tmp_path)
    config = json.loads((folder / CONFIG_NAME).read_text())
    (folder / CONFIG_NAME).write_text("{ not json")
    with pytest.raises(ValueError, match=f"{CONFIG_NAME}' is not valid JSON"):
        load_vae(folder)
    (folder / CONFIG_NAME).write_text(json.dumps(dict(config, model={})))
    no_section = rf"{CONFIG_NAME}' has no 'model\.vae' section \(expected a JSON object"
    with pytest.raises(ValueError, match=no_section):
        load_vae(folder)
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    weights = folder / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    weights.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    with pytest.raises(ValueError, match=f"{WEIGHTS_NAME}' is not a readable safetensors file"):
        load_vae(folder)
    # the same number of bytes, one weight damaged into NaN
    from safetensors.torch import load_file, save_file

    state = load_file(str(checkpoint_dir() / "vae" / WEIGHTS_NAME))
    name = sorted(state)[0]
    state[name].view(-1)[0] = float("nan")
    save_file(state, str(weights))
    with pytest.raises(ValueError, match=f"holds NaN or infinite values in '{name}'"):
        load_vae(folder)


def test_a_missing_transformers_text_encoder_fails_fast(tmp_path):
    folder = _copy_checkpoint("text2img", tmp_path)
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["text_encoder"] = {"kind": "transformers", "path": "openai/clip-vit-base-patch32", "width": 64}
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="is not on this machine; pass text_encoder_path"):
        TextToImagePipeline.from_pretrained(folder, device="cpu")


def test_written_files_have_the_usual_mode(tmp_path):
    from minildm.checkpoints import save_model

    save_model(tmp_path, {"w": torch.zeros(2)}, {"kind": "x"})
    umask = os.umask(0)
    os.umask(umask)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


def test_figures_are_written_atomically(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    path = save_figure(fig, tmp_path / "out")  # no suffix: .png added, and said
    assert path == tmp_path / "out.png" and path.read_bytes()[:4] == b"\x89PNG"
    before = path.read_bytes()

    def interrupted(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(type(fig), "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.png"]
    with pytest.raises(ValueError, match="is a folder; name an image file"):
        save_figure(fig, tmp_path)
    plt.close(fig)


# ------------------------------------------------------------------ the command line: one line, exit 1

CLI_CASES = [
    (["generate", "a purple circle"], "unknown word 'purple'"),
    (["generate", "circle red a square blue"], "expected the article ('a') at word 1"),
    (["generate", "a red circle", "--seed", "-1"], r"--seed must be an int in [0, 2**63 - 1], got -1"),
    (["generate", "a red circle", "--seed", str(2**70)], "--seed must be an int in [0, 2**63 - 1]"),
    (["generate", "a red circle", "--guidance", "inf"], "guidance_scale must be a finite number >= 1"),
    # on the CPU: a GPU's kernels may saturate where the CPU's overflow (the message is the point here)
    (["generate", "a red circle", "--guidance", "1e30", "--device", "cpu"], "the sampled latents"),
    (["generate", "a red circle", "--steps", "0"], "--steps must be a positive int"),
    (["generate", "a red circle", "--phrase-guidance", "-1"], "phrase_guidance must be a finite number >= 0"),
    (["evaluate", "--phrase-guidance", "nan"], "phrase_guidance must be a finite number >= 0"),
    (["generate", "a red circle", "--sampler", "ddpm", "--eta", "0.5"], "--eta is DDIM's noise level"),
    (["generate", "a red circle", "-o", "{tmp}"], "is a folder; name an image file"),
    (["generate", "a red circle", "-o", "{tmp}/file/x.png"], "'{tmp}/file' is a file, not a folder"),
    (["train", "toy2d", "--run-dir", "{tmp}/file/run"], "--run-dir '{tmp}/file/run': '{tmp}/file' is a file"),
    (["demo", "--seed", "-1"], "--seed must be an int"),
    (["train", "pixel", "--data-size", "0", "--run-dir", "{tmp}/r", "--out", "{tmp}/o"],
     "data_size must be a positive int"),
    (["train", "toy2d", "--out", "{tmp}/file"], "--out '{tmp}/file' is a file; it must be a folder"),
    (["train", "vae", "--two-object-fraction", "0.7", "--run-dir", "{tmp}/r", "--out", "{tmp}/o"],
     "--two-object-fraction applies to 'text2img' only, not 'vae'"),
    (["train", "text2img", "--two-object-fraction", "1.5", "--run-dir", "{tmp}/r", "--out", "{tmp}/o"],
     r"two_object_fraction must be a number in [0, 1], got 1.5"),
    (["train", "toy2d", "--run-dir", "{tmp}/none", "--resume"], "--resume: no training state in"),
    (["train", "toy2d", "--seed", "-3", "--run-dir", "{tmp}/r", "--out", "{tmp}/o"], "seed must be an int"),
    # nothing overwritten without asking: a checkpoint in --out, an input, an earlier run's images
    (["train", "toy2d", "--run-dir", "{tmp}/r", "--out", "{tmp}/ckpt"],
     "--out '{tmp}/ckpt' already holds a model checkpoint (config.json, model.safetensors): replace it "
     "with --overwrite"),
    (["img2img", "{tmp}/in.png", "a red circle", "-o", "{tmp}/in.png"],
     "-o '{tmp}/in.png' is the input IMAGE '{tmp}/in.png'"),
    (["img2img", "{tmp}/in.png", "a red circle", "-o", "{tmp}/held/../in.png"], "is the input IMAGE"),
    (["inpaint", "{tmp}/in.png", "{tmp}/mask.png", "a red circle", "-o", "{tmp}/mask.png"],
     "-o '{tmp}/mask.png' is the input MASK"),
    (["img2img", "{tmp}/held/000.png", "a red circle", "-o", "{tmp}/x.png", "--save-dir", "{tmp}/held",
      "--overwrite"], "--save-dir '{tmp}/held' would overwrite the input IMAGE '{tmp}/held/000.png'"),
    (["generate", "a red circle", "-o", "{tmp}/s/001.png", "--save-dir", "{tmp}/s"],
     "--save-dir '{tmp}/s' would overwrite the figure"),
    (["generate", "a red circle", "-o", "{tmp}/x.png", "--save-dir", "{tmp}/held"],
     "--save-dir '{tmp}/held' already holds 2 image(s) (000.png ...): replace them with --overwrite"),
    (["generate", "a red circle", "-o", "{tmp}/x.png", "--save-dir", "{tmp}/file"],
     "--save-dir '{tmp}/file': '{tmp}/file' is a file, not a folder"),
    # the figure's format and folder, before any model loads
    (["generate", "a red circle", "-o", "{tmp}/out.txt"],
     "output '{tmp}/out.txt': '.txt' is not a figure format"),
    (["generate", "a red circle", "-o", "{tmp}/out.tar.gz"],
     "'.gz' is not a figure format; name a file ending"),
    (["img2img", "{tmp}/in.png", "a red circle", "-o", "/proc/x"], "the output's folder '/proc': "),
    (["demo", "-o", "{tmp}/demo.txt"], "'.txt' is not a figure format"),
    # what cannot fit in memory is refused before any work, with the estimate
    (["train", "pixel", "--batch-size", "100000000", "--run-dir", "{tmp}/r", "--out", "{tmp}/o"],
     "training pixel_ddpm with a batch of 100000000 needs about 1.1 PB of memory (a rough estimate), "
     "more than the"),
    (["train", "vae", "--data-size", "10000000000", "--run-dir", "{tmp}/r", "--out", "{tmp}/o"],
     "needs about 500 TB of memory (a rough estimate), more than the"),
    (["generate", "a red circle", "-n", "100000000", "-o", "{tmp}/x.png"],
     "100000000 image(s) at once needs about 150 TB of memory (a rough estimate)"),
    (["evaluate", "--n", "1000000000000"],
     "evaluate --n 1000000000000 (4000000000000 prompts) needs about 400 PB of memory"),
    (["train", "toy2d", "--lr", "0", "--run-dir", "{tmp}/r", "--out", "{tmp}/o"],
     "--lr must be a positive finite number, got 0.0"),
    (["train", "toy2d", "--lr", "nan", "--run-dir", "{tmp}/r", "--out", "{tmp}/o"],
     "--lr must be a positive finite number"),
    (["tokenizer", "-o", "{tmp}/file"], "-o '{tmp}/file' is a file; the tokenizer is a folder"),
]


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


def _bad_input_files(tmp_path: Path) -> None:
    """What CLI_CASES refer to: a file, a checkpoint, an image, a mask, an earlier run's images."""
    from PIL import Image

    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "ckpt").mkdir()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        (tmp_path / "ckpt" / name).write_text("a model someone trained for an hour")
    Image.new("RGB", (32, 32), "red").save(tmp_path / "in.png")
    Image.new("L", (32, 32), 255).save(tmp_path / "mask.png")
    (tmp_path / "held").mkdir()
    for name in ("000.png", "001.png"):
        Image.new("RGB", (32, 32), "blue").save(tmp_path / "held" / name)


@pytest.mark.parametrize("args, message", CLI_CASES, ids=[" ".join(c[0][:3]) for c in CLI_CASES])
def test_cli_says_it_in_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setenv("MINILDM_BUDGET", "quick")
    _bad_input_files(tmp_path)
    before = _tree(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) == 1
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("minildm: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message.replace("{tmp}", str(tmp_path)) in err
    assert _tree(tmp_path) == before  # nothing written, nothing replaced, nothing left behind


def test_cli_in_a_real_process_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "minildm", "generate", "a purple circle", "-o", str(tmp_path / "x.png")],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 1 and result.stderr.startswith("minildm: error: caption 'a purple circle'")
    assert result.stderr.count("\n") == 1 and not (tmp_path / "x.png").exists()
    usage = subprocess.run([sys.executable, "-m", "minildm", "train", "gan"], capture_output=True, text=True)
    assert usage.returncode == 2 and "invalid choice" in usage.stderr


def test_generate_says_the_path_it_wrote(tmp_path, capsys):
    assert main(["generate", "a red circle", "--steps", "2", "-o", str(tmp_path / "out")]) == 0
    assert f"written to {tmp_path / 'out.png'}" in capsys.readouterr().out
    assert (tmp_path / "out.png").is_file() and not (tmp_path / "out").exists()


def test_a_new_training_run_keeps_the_old_state(tmp_path, capsys):
    args = ["train", "toy2d", "--budget", "quick", "--steps", "3", "--run-dir", str(tmp_path / "run"),
            "--out", str(tmp_path / "out")]
    assert main(args) == 0
    state = (tmp_path / "run" / "training_state.safetensors").read_bytes()
    assert main(args) == 1
    assert "already holds a training state: continue it with --resume" in capsys.readouterr().err
    assert (tmp_path / "run" / "training_state.safetensors").read_bytes() == state
    assert main([*args, "--overwrite"]) == 0
    assert main([*args, "--resume", "--overwrite"]) == 1
    assert main([*args[:-4], "--run-dir", str(tmp_path / "run"), "--resume", "--seed", "5"]) == 1
    assert "training.seed: 0 -> 5" in capsys.readouterr().err


# ------------------------------------------------------------------ nothing overwritten, nothing half written


def test_train_out_keeps_an_existing_checkpoint(tmp_path, capsys):
    args = ["train", "toy2d", "--budget", "quick", "--steps", "3", "--out", str(tmp_path / "out")]
    assert main([*args, "--run-dir", str(tmp_path / "a")]) == 0
    weights = (tmp_path / "out" / WEIGHTS_NAME).read_bytes()
    capsys.readouterr()
    assert main([*args, "--run-dir", str(tmp_path / "b")]) == 1  # another run, the same --out
    assert "--out" in capsys.readouterr().err and not (tmp_path / "b").exists()
    assert (tmp_path / "out" / WEIGHTS_NAME).read_bytes() == weights
    assert main([*args, "--run-dir", str(tmp_path / "b"), "--overwrite", "--seed", "1"]) == 0
    assert (tmp_path / "out" / WEIGHTS_NAME).read_bytes() != weights


def _generate(tmp_path: Path, n: int, *extra: str) -> int:
    return main(["generate", "a red circle", "--steps", "2", "-n", str(n), "-o", str(tmp_path / "fig.png"),
                 "--save-dir", str(tmp_path / "d"), *extra])


def test_save_dir_holds_one_run_only(tmp_path, capsys):
    assert _generate(tmp_path, 3) == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["000.png", "001.png", "002.png"]
    (tmp_path / "d" / "notes.txt").write_text("mine")
    before = _tree(tmp_path)
    capsys.readouterr()
    assert _generate(tmp_path, 1) == 1  # the earlier images would be left beside the new one
    assert "already holds 3 image(s)" in capsys.readouterr().err and _tree(tmp_path) == before
    assert _generate(tmp_path, 1, "--overwrite") == 0
    assert "its 3 earlier image(s) removed or replaced" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["000.png", "notes.txt"]  # others kept
    assert (tmp_path / "d" / "000.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "fig.png"]  # no staging folder left


def test_a_full_disk_names_the_file_and_writes_nothing(tmp_path, capsys, monkeypatch):
    import matplotlib.figure
    from PIL import Image

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:  # the first image alone
        m.setattr(Image.Image, "save", full)
        assert _generate(tmp_path, 2) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"[Errno 28] cannot write '{tmp_path / 'd' / '000.png'}': No space left on device" in err
    assert list(tmp_path.iterdir()) == []  # no save dir, no figure, no staging folder
    with monkeypatch.context() as m:  # the figure, after the images
        m.setattr(matplotlib.figure.Figure, "savefig", full)
        assert _generate(tmp_path, 2) == 1
    assert f"cannot write '{tmp_path / 'fig.png'}': No space left on device" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # the images are not kept without their figure
    assert _generate(tmp_path, 2) == 0
    before = _tree(tmp_path)
    with monkeypatch.context() as m:  # with --overwrite: the earlier run's images stay whole
        m.setattr(matplotlib.figure.Figure, "savefig", full)
        assert _generate(tmp_path, 1, "--overwrite") == 1
    assert _tree(tmp_path) == before


def test_a_full_disk_while_saving_a_checkpoint_names_it(tmp_path, capsys, monkeypatch):
    from safetensors import SafetensorError

    import minildm.checkpoints

    def full(*args, **kwargs):  # what safetensors raises (its text alone gives the errno)
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(minildm.checkpoints, "save_file", full)
    out = tmp_path / "out"
    args = ["train", "toy2d", "--budget", "quick", "--steps", "2", "--run-dir", str(tmp_path / "r")]
    assert main([*args, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[Errno 28] cannot write '" in err and "No space left on device" in err
    assert ".safetensors'" in err, err  # the file, not a temporary name
    assert not list(out.glob(".*")) and not list((tmp_path / "r").glob(".*"))  # no temporary file left


def test_tokenizer_is_written_whole_or_not_at_all(tmp_path, capsys, monkeypatch):
    import minildm.text

    assert main(["tokenizer", "-o", str(tmp_path / "tok")]) == 0
    before = _tree(tmp_path)

    def full(tokenizer, folder):
        (Path(folder) / "tokenizer.json").write_text("{ half")
        raise Exception("No space left on device (os error 28)")  # what the tokenizers library raises

    monkeypatch.setattr(minildm.text, "save_tokenizer", full)
    assert main(["tokenizer", "-o", str(tmp_path / "tok")]) == 1
    err = capsys.readouterr().err
    assert f"[Errno 28] cannot write the tokenizer to '{tmp_path / 'tok'}': No space left on device" in err
    assert _tree(tmp_path) == before


def test_tokenizer_takes_no_seed(tmp_path, capsys):
    with pytest.raises(SystemExit) as usage:  # deterministic: a seed would be silently ignored
        main(["tokenizer", "--seed", "-1", "-o", str(tmp_path / "tok")])
    assert usage.value.code == 2 and "unrecognized arguments: --seed" in capsys.readouterr().err
    assert not (tmp_path / "tok").exists()
    assert main(["tokenizer", "-o", str(tmp_path / "tok")]) == 0
    assert (tmp_path / "tok" / "tokenizer.json").is_file()


# ------------------------------------------------------------------ interrupted or diverged: what next


def test_an_interrupted_run_says_how_to_continue(tmp_path, capsys, monkeypatch):
    import minildm.training

    run = tmp_path / "run"
    args = ["train", "toy2d", "--budget", "quick", "--steps", "3", "--run-dir", str(run),
            "--out", str(tmp_path / "out")]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # before its first checkpoint: nothing to resume
        m.setattr(minildm.training, "train", interrupted)
        assert main(args) == 130
    err = capsys.readouterr().err
    assert err == ("minildm: interrupted; nothing saved yet (a checkpoint every 300 steps): run the same "
                   "command again\n")
    assert main(args) == 0
    with monkeypatch.context() as m:
        m.setattr(minildm.training, "train", interrupted)
        assert main([*args[:5], "6", *args[6:], "--resume"]) == 130
    err = capsys.readouterr().err
    assert err == f"minildm: interrupted; the same command with --resume continues the run in '{run}' " \
                  "from its last checkpoint\n"


def test_lr_sets_the_learning_rate_and_the_divergence_error_names_it(tmp_path, capsys):
    args = ["train", "toy2d", "--budget", "quick", "--steps", "2", "--run-dir", str(tmp_path / "r"),
            "--out", str(tmp_path / "o")]
    assert main([*args, "--lr", "1e-3"]) == 0
    assert json.loads((tmp_path / "o" / CONFIG_NAME).read_text())["training"]["lr"] == 1e-3
    weights = (tmp_path / "o" / WEIGHTS_NAME).read_bytes()
    assert main([*args[:5], "300", *args[6:], "--resume", "--lr", "1e30"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "training diverged" in err, err
    assert "lower it with --lr (this run: 1e+30) and continue with --resume" in err
    assert (tmp_path / "o" / WEIGHTS_NAME).read_bytes() == weights
    assert main([*args[:5], "4", *args[6:], "--resume", "--lr", "5e-4"]) == 0  # a lower one: resumed
    resumed = json.loads((tmp_path / "o" / CONFIG_NAME).read_text())["resumed"]
    assert resumed[-1]["changed"]["training.lr"] == [1e-3, 5e-4]
