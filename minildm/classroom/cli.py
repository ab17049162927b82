"""``python -m minildm.classroom``: student notebooks and the offline course site.

python -m minildm.classroom student [NOTEBOOK...] [--out student/]
    write the student version of each notebook (default: every notebooks/NN_*.ipynb)
python -m minildm.classroom check-student [NOTEBOOK...] [--out student/]
    exit 1, naming the files, when the student versions in --out are not what ``student`` writes
python -m minildm.classroom site [NOTEBOOK...] [--out site/] [--teaching docs/teaching.md] [--check]
    render the notebooks with their stored outputs (nothing is executed) to an offline HTML site

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


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("notebooks", nargs="*", type=Path,
                        help=f"notebooks (default: every {NOTEBOOKS}/NN_*.ipynb)")
    common.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Student notebooks and the offline course site "
                                     "(docs/teaching.md).\n\n" + __doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser("student", parents=[common], help="write the student notebooks")
    student.add_argument("--out", type=Path, default=STUDENT, help="default student/")
    check = commands.add_parser("check-student", parents=[common],
                                help="fail when the committed student notebooks are out of date")
    check.add_argument("--out", type=Path, default=STUDENT, help="default student/")
    site = commands.add_parser("site", parents=[common], help="render the offline course site")
    site.add_argument("--out", type=Path, default=Path("site"), help="default site/")
    site.add_argument("--teaching", type=Path, default=Path("docs/teaching.md"),
                      help="the teacher's guide to render too (skipped when missing)")
    site.add_argument("--check", action="store_true",
                      help="open every page in headless Chromium: check math and images, save "
                      "screenshots in OUT/screenshots/")
    return parser


def _notebooks(given: list[Path]) -> list[Path]:
    notebooks = given or lesson_notebooks(NOTEBOOKS)
    if not notebooks:
        raise FileNotFoundError(f"no {NOTEBOOKS}/NN_*.ipynb here (run from the repository root)")
    return notebooks


def _student(args: argparse.Namespace) -> int:
    for path in _notebooks(args.notebooks):
        print(f"wrote {write_student(path, args.out)}")
    return 0


def _check_student(args: argparse.Namespace) -> int:
    notebooks = _notebooks(args.notebooks)
    if not args.out.is_dir():
        print(f"{PROG}: no {args.out}/ yet, nothing to check (`make student` writes it)")
        return 0
    stale = stale_students(notebooks, args.out, extra=not args.notebooks)
    if stale:
        print(f"{PROG}: error: student notebooks out of date: {', '.join(stale)}; run `make student`",
              file=sys.stderr)
        return 1
    print(f"{PROG}: {len(notebooks)} student notebooks in {args.out}/ are up to date")
    return 0


def _site(args: argparse.Namespace) -> int:
    from minildm.classroom.site import build_site, check_site

    index = build_site(_notebooks(args.notebooks), args.out,
                       teaching=args.teaching if args.teaching.is_file() else None)
    print(f"wrote {index}")
    if args.check:
        for line in check_site(args.out, args.out / "screenshots"):
            print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status."""
    args = _parser().parse_args(argv)
    run = {"student": _student, "check-student": _check_student, "site": _site}[args.command]
    try:
        return run(args)
    except (ValueError, OSError, RuntimeError) as error:  # ExerciseError is a ValueError
        if args.debug:
            raise
        message = " ".join(str(error).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1
