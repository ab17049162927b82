"""Where a sampling command's pictures go: the captioned figure (``-o``) and, with ``--save-dir``,
each image alone as NNN.png.

Checked before any work (:func:`check_outputs`: no output replaces an input, no earlier run's images
are silently left or replaced), then written all or nothing (:func:`write_results`: the images are
staged in a hidden folder beside ``--save-dir`` and moved in once the figure is written), and a
failed write (a full disk) names the file.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

#: the files ``--save-dir`` holds for a command: NNN.png (000.png, 001.png, ...), and nothing else
SAVED_NAME = re.compile(r"\d{3,}\.png")


def saved_images(folder: Path) -> list[Path]:
    """The images a sampling command wrote in ``folder`` (NNN.png), in order."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if SAVED_NAME.fullmatch(p.name) and p.is_file())


def check_outputs(output: Path, save_dir: Path | None, overwrite: bool, inputs: dict[str, Path]) -> None:
    """Refuse, before any work, an output that would replace an input or another output, and a
    ``--save-dir`` that holds images of an earlier run (unless ``overwrite``)."""
    figure = output.resolve()
    for flag, path in inputs.items():
        if path.resolve() == figure:
            raise ValueError(f"-o {str(output)!r} is the input {flag} {str(path)!r}: name another file "
                             "for the figure (the input would be overwritten)")
    if save_dir is None:
        return
    folder = save_dir.resolve()
    for flag, path in {"-o": output, **inputs}.items():
        if path.resolve().parent == folder and SAVED_NAME.fullmatch(path.name):
            what = "the figure" if flag == "-o" else f"the input {flag}"
            raise ValueError(f"--save-dir {str(save_dir)!r} would overwrite {what} {str(path)!r} (its images "
                             "are NNN.png): pick another --save-dir")
    held = saved_images(save_dir)
    if held and not overwrite:
        raise ValueError(
            f"--save-dir {str(save_dir)!r} already holds {len(held)} image(s) ({held[0].name} ...): "
            "replace them with --overwrite (its NNN.png files are removed), or pick another --save-dir"
        )


def name_os_error(err: Exception, what: str) -> OSError | None:
    """``err`` as an OSError of the same errno (and type) whose message says ``what`` could not be
    done; None when it is no system error."""
    from minildm.utils import os_error_code

    code = err.errno if isinstance(err, OSError) else os_error_code(err)
    if not code:
        return OSError(f"{what}: {err}") if isinstance(err, OSError) else None
    reason = err.strerror if isinstance(err, OSError) and err.strerror else os.strerror(code)
    return OSError(code, f"{what}: {reason}")


def _stage_images(images, save_dir: Path) -> Path:
    """Write uint8 images (B, H, W, 3) as NNN.png in a new hidden folder beside ``save_dir``; a
    failure (a full disk) removes it and names the file of ``save_dir`` that could not be written."""
    from PIL import Image

    save_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{save_dir.name}.", suffix=".partial", dir=save_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private: the usual mode, it may become save_dir
        for k, image in enumerate(images):
            name = f"{k:03d}.png"
            try:
                Image.fromarray(image).save(staging / name, format="PNG")
            except OSError as err:
                raise name_os_error(err, f"cannot write {str(save_dir / name)!r}") from err  # (an OSError)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _commit_images(staging: Path, save_dir: Path) -> int:
    """Move the staged images into ``save_dir`` (the whole folder at once when it is new) and remove
    the earlier run's NNN.png files they do not replace. Returns how many earlier images went."""
    if not save_dir.exists():
        os.replace(staging, save_dir)
        return 0
    earlier = saved_images(save_dir)
    new = {p.name for p in staging.iterdir()}
    for name in sorted(new):
        os.replace(staging / name, save_dir / name)
    for stale in earlier:
        if stale.name not in new:
            stale.unlink()
    staging.rmdir()
    return len(earlier)


def write_results(
    images, titles: list[str], output: Path, save_dir: Path | None, how: str, shown=None
) -> tuple[Path, int]:
    """The captioned figure of ``shown`` (default ``images``) at ``output`` and, with
    ``--save-dir``, each of ``images`` alone as NNN.png, at its native size: all or nothing (the
    images are written first beside the folder and moved in once the figure is written). Returns the
    figure's path and the number of earlier images replaced in ``save_dir`` (with ``--overwrite``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minildm.utils import show_images, to_uint8

    staging = _stage_images(to_uint8(images), save_dir) if save_dir is not None else None
    try:
        shown = images if shown is None else shown
        fig = show_images(to_uint8(shown), titles, ncols=8, path=output, suptitle=how)
        plt.close(fig)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return output, (_commit_images(staging, save_dir) if staging is not None else 0)
