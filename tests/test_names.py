"""minildm.names: the shared names load without torch, and one record per shipped checkpoint."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from minildm.names import CHECKPOINTS, MODEL_KINDS, TRAIN_KINDS

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "checkpoints"


@pytest.mark.parametrize("code", [
    "import minildm.names",
    "import minildm.cli; minildm.cli.build_parser().format_help()",
    "from minildm.cli import main; main(['--help'])",
    "from minildm.cli import main; main(['train', '--help'])",
    "from minildm.cli import main; main(['retrain', '--help'])",
    "from minildm.cli import main; main(['classroom', '--help'])",
])
def test_the_names_and_the_command_lines_help_load_no_torch(code):
    check = f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n" + (
        "heavy = [m for m in ('torch', 'numpy', 'transformers', 'safetensors') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_one_record_per_shipped_folder():
    assert sorted(CHECKPOINTS) == sorted(p.parent.name for p in SHIPPED.glob("*/config.json"))
    for folder, record in CHECKPOINTS.items():
        config = json.loads((SHIPPED / folder / "config.json").read_text())
        assert record.folder == folder and record.kind == config["kind"] in MODEL_KINDS
        assert record.task in TRAIN_KINDS and record.quality_n > 0
        # trained on the VAE and the text encoder its config records
        assert (record.vae is not None) == ("vae" in config)
        assert (record.text_encoder is not None) == ("text_encoder" in config)
        teacher = config.get("distillation", {}).get("teacher")
        assert teacher == (None if record.teacher is None else f"data/checkpoints/{record.teacher}")


def test_the_records_are_in_dependency_order():
    order = list(CHECKPOINTS)
    for folder, record in CHECKPOINTS.items():
        assert all(order.index(dep) < order.index(folder) for dep in record.dependencies), folder
    assert CHECKPOINTS["lcm"].dependencies == ("vae", "clip", "text2img_unet")
    assert {record.task for record in CHECKPOINTS.values()} == set(TRAIN_KINDS)  # every recipe ships


def test_the_library_reads_its_names_from_here():
    from minildm import names
    from minildm.checkpoints import KINDS
    from minildm.metrics.checkpoint_quality import QUALITY
    from minildm.pipelines import DEFAULT_STRENGTH
    from minildm.pipelines.img2img import INITS
    from minildm.retrain import ORDER
    from minildm.schedulers import SCHEDULERS
    from minildm.tasks import ALIASES, TASKS

    assert tuple(SCHEDULERS) == names.SAMPLER_NAMES == tuple(names.SAMPLER_TITLES)
    assert DEFAULT_STRENGTH is names.DEFAULT_STRENGTH and INITS is names.IMG2IMG_INITS
    assert tuple(TASKS) == TRAIN_KINDS and ALIASES is names.TRAIN_ALIASES
    assert KINDS is MODEL_KINDS and ORDER == tuple(CHECKPOINTS)
    assert {record.quality for record in CHECKPOINTS.values()} == set(QUALITY)
