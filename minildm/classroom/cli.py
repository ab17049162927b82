"""``minildm classroom`` (``python -m minildm.classroom``): student notebooks, the offline course sites
and the teacher's guide.

minildm classroom student [NOTEBOOK...] [--out student/]
    write the student version of each notebook (default: every notebooks/NN_*.ipynb)
minildm classroom check-student [NOTEBOOK...] [--out student/]
    exit 1, naming the files, when the student versions in --out are not what ``student`` writes
minildm classroom site [NOTEBOOK...] [--teacher] [--out site/] [--check]
    render the student notebooks (default every student/NN_*.ipynb, with the figures of
    notebooks/) to an offline HTML site; --teacher: the teacher's notebooks and guide into site-teacher/
minildm classroom teaching [NOTEBOOK...] [--out docs/teaching.md] [--check]
    fill in the generated parts of the teacher's guide from the notebooks (--check: exit 1 when
    the file is not what it would write)

Errors are one line (``minildm.classroom: error: ...``, exit 1; exit 2 for bad usage);
``--debug`` shows the Python traceback instead. Run from the repository root.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from minildm.classroom.student import NOTEBOOKS, STUDENT, lesson_notebooks, stale_students, write_student

PROG = "minildm.classroom"
GUIDE = Path("docs/teaching.md")


class UsageError(ValueError):
    """Bad command-line input (exit 2)."""


def _parser(prog: str = f"python -m {PROG}") -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("notebooks", nargs="*", type=Path,
                        help=f"notebooks (default: every {NOTEBOOKS}/NN_*.ipynb; for the student site "
                        f"every {STUDENT}/NN_*.ipynb)")
    common.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    parser = argparse.ArgumentParser(prog=prog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Student notebooks, the offline course sites and the "
                                     "teacher's guide (docs/teaching.md).\n\n" + __doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser("student", parents=[common], help="write the student notebooks")
    student.add_argument("--out", type=Path, default=STUDENT, help="a folder, default student/")
    check = commands.add_parser("check-student", parents=[common],
                                help="fail when the committed student notebooks are out of date")
    check.add_argument("--out", type=Path, default=STUDENT, help="an existing folder, default student/")
    site = commands.add_parser("site", parents=[common], help="render an offline course site",
                               description="Render the student site (default: every student/NN_*.ipynb "
                               "into site/, the figures taken from notebooks/), or with --teacher the "
                               "teacher's notebooks and guide into site-teacher/.")
    site.add_argument("--teacher", action="store_true",
                      help="the teacher's site: solutions, hidden tests and the teacher's guide")
    site.add_argument("--out", type=Path, help="a folder, default site/ (site-teacher/ with --teacher)")
    site.add_argument("--teaching", type=Path,
                      help="with --teacher, the guide to render too (default docs/teaching.md, skipped "
                      "when missing)")
    site.add_argument("--outputs-from", type=Path, default=NOTEBOOKS,
                      help="the student site shows the stored outputs of the teacher's notebooks in this "
                      "folder (default notebooks/)")
    site.add_argument("--check", action="store_true",
                      help="open every page in headless Chromium: check math and images, save "
                      "screenshots in OUT/screenshots/")
    teaching = commands.add_parser("teaching", parents=[common],
                                   help="fill in the teacher's guide's generated parts from the notebooks")
    teaching.add_argument("--out", type=Path, default=GUIDE, help="the guide, default docs/teaching.md")
    teaching.add_argument("--check", action="store_true",
                          help="write nothing; exit 1 when the guide is not what would be written")
    return parser


def _folder(path: Path, flag: str, must_exist: bool = False) -> Path:
    """``path`` when it can be a folder for ``flag``; UsageError otherwise."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: is a file; expected a folder")
    if must_exist and not path.is_dir():
        raise UsageError(f"{flag} {path}: no such folder")
    return path


def _notebooks(given: list[Path], folder: Path = NOTEBOOKS) -> list[Path]:
    notebooks = given or lesson_notebooks(folder)
    if not notebooks:
        raise FileNotFoundError(f"no {folder}/NN_*.ipynb here (run from the repository root)")
    return notebooks


def _student(args: argparse.Namespace) -> int:
    _folder(args.out, "--out")
    for path in _notebooks(args.notebooks):
        print(f"wrote {write_student(path, args.out)}")
    return 0


def _check_student(args: argparse.Namespace) -> int:
    _folder(args.out, "--out", must_exist=True)
    notebooks = _notebooks(args.notebooks)
    stale = stale_students(notebooks, args.out, extra=not args.notebooks)
    if stale:
        print(f"{PROG}: error: student notebooks out of date: {', '.join(stale)}; run `make student`",
              file=sys.stderr)
        return 1
    print(f"{PROG}: {len(notebooks)} student notebooks in {args.out}/ are up to date")
    return 0


def _site(args: argparse.Namespace) -> int:
    from minildm.classroom.site import build_site, check_site

    out = _folder(args.out or Path("site-teacher" if args.teacher else "site"), "--out")
    if args.teacher:
        teaching = args.teaching or GUIDE
        if args.teaching is not None and not teaching.is_file():
            raise UsageError(f"--teaching {teaching}: no such file")
        index = build_site(_notebooks(args.notebooks), out, teaching=teaching if teaching.is_file() else None)
    else:
        if args.teaching is not None:
            raise UsageError("--teaching goes with --teacher: the teacher's guide shows solutions")
        outputs_from = _folder(args.outputs_from, "--outputs-from", must_exist=True)
        index = build_site(_notebooks(args.notebooks, STUDENT), out, student=True, outputs_from=outputs_from)
    print(f"wrote {index}")
    if args.check:
        for line in check_site(out, out / "screenshots"):
            print(line)
    return 0


def _teaching(args: argparse.Namespace) -> int:
    from minildm.classroom.teaching import write_guide

    notebooks = _notebooks(args.notebooks)
    if not args.out.is_file():
        raise UsageError(f"--out {args.out}: no such file (the guide's hand-written parts are its template)")
    if args.check:
        if write_guide(notebooks, args.out, check=True):
            print(f"{PROG}: error: {args.out} is not what the notebooks give; run `make teaching`",
                  file=sys.stderr)
            return 1
        print(f"{PROG}: {args.out} is up to date with {len(notebooks)} notebooks")
        return 0
    write_guide(notebooks, args.out)
    print(f"wrote {args.out}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str = f"python -m {PROG}") -> int:
    """Run one command (``prog``: the name its usage shows, e.g. ``minildm classroom``); return the exit
    status."""
    args = _parser(prog).parse_args(argv)
    run = {"student": _student, "check-student": _check_student, "site": _site,
           "teaching": _teaching}[args.command]
    try:
        return run(args)
    except (ValueError, OSError, RuntimeError) as error:  # ExerciseError is a ValueError
        if args.debug:
            raise
        message = " ".join(str(error).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1
