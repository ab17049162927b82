"""minildm.classroom: student notebooks from the exercise convention, on small synthetic notebooks
(and, marked ``student``, the committed student/ notebooks executed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from minildm.classroom import ExerciseError, make_student, mark_check, mark_solution, validate_exercises
from minildm.classroom.cli import main
from minildm.classroom.student import stale_students, student_text, write_student

ROOT = Path(__file__).resolve().parents[1]
STUDENT_NOTEBOOKS = sorted((ROOT / "student").glob("[0-9][0-9]_*.ipynb"))

SOLUTION = """\
import torch


def double(x):
    \"\"\"Twice x.\"\"\"
    ### BEGIN SOLUTION
    y = x + x
    return y
    ### END SOLUTION"""
CHECK = """\
torch.testing.assert_close(double(torch.ones(2)), torch.full((2,), 2.0), msg="double(1) should be 2")
### BEGIN HIDDEN TESTS
torch.testing.assert_close(double(torch.zeros(1)), torch.zeros(1))
### END HIDDEN TESTS
print("ok")"""
ANSWER = """**Predict, then run.** What does `double` do to zero?

### BEGIN SOLUTION
It stays zero.
### END SOLUTION"""


def exercise_notebook() -> nbformat.NotebookNode:
    """A lesson with one code exercise (solution, check with hidden tests) and one markdown answer,
    executed once (outputs, counts, timings and widget state to clear)."""
    nb = new_notebook(cells=[
        new_markdown_cell("# 99 · A lesson\n\nIntro."),
        new_code_cell(SOLUTION, execution_count=1),
        new_code_cell(CHECK, execution_count=2, outputs=[new_output("stream", name="stdout", text="ok\n")]),
        new_markdown_cell(ANSWER),
        new_code_cell("x = 1\nx", execution_count=3,
                      outputs=[new_output("execute_result", data={"text/plain": "1"}, execution_count=3)]),
    ])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for cell in nb.cells:
        cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    mark_solution(nb.cells[1], "double")
    mark_check(nb.cells[2], "double_check", points=2)
    mark_solution(nb.cells[3], "double_zero", points=1)
    return nb


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    nbformat.write(nb, str(path))
    return path


def problem(nb: nbformat.NotebookNode, name: str = "lesson.ipynb") -> str:
    with pytest.raises(ExerciseError) as error:
        validate_exercises(nb, name)
    message = str(error.value)
    assert message.startswith(f"{name}: ") and "\n" not in message
    return message


# --- the student version ---------------------------------------------------------------------


def test_solution_replaced_at_its_indentation_and_hidden_tests_removed():
    student = make_student(exercise_notebook())
    assert student.cells[1].source == (
        'import torch\n\n\ndef double(x):\n    """Twice x."""\n'
        "    # YOUR CODE HERE\n    raise NotImplementedError()"
    )
    assert student.cells[2].source == CHECK.split("\n")[0] + '\nprint("ok")'
    assert student.cells[3].source == ANSWER.split("\n")[0] + "\n\nYOUR ANSWER HERE"
    assert student.cells[0].source == "# 99 · A lesson\n\nIntro."


def test_outputs_counts_timings_and_widget_state_cleared_metadata_kept():
    nb = exercise_notebook()
    student = make_student(nb)
    for cell in student.cells:
        assert "execution" not in cell.metadata
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert "widgets" not in student.metadata and student.metadata["kernelspec"]["name"] == "python3"
    assert student.cells[1].metadata["nbgrader"] == {
        "solution": True, "grade": False, "locked": False, "grade_id": "double", "schema_version": 3}
    assert student.cells[2].metadata["nbgrader"] == {
        "solution": False, "grade": True, "locked": True, "points": 2, "grade_id": "double_check",
        "schema_version": 3}
    assert student.cells[3].metadata["nbgrader"]["grade"] is True  # nbgrader: markdown answers are graded
    assert nb.cells[2].outputs and "BEGIN SOLUTION" in nb.cells[1].source  # the source is unchanged
    nbformat.validate(student)


def test_student_version_is_deterministic(tmp_path):
    source = write(exercise_notebook(), tmp_path / "99_lesson.ipynb")
    first = write_student(source, tmp_path / "a").read_bytes()
    second = write_student(source, tmp_path / "b").read_bytes()
    assert first == second and first.endswith(b"}\n")
    assert student_text(source).encode() == first
    written = nbformat.reads(first.decode(), as_version=4)
    assert written.cells[1].source.endswith("raise NotImplementedError()")


def test_notebook_without_exercises_is_copied_with_outputs_cleared(tmp_path):
    nb = new_notebook(cells=[new_code_cell("1 + 1", execution_count=4, outputs=[
        new_output("execute_result", data={"text/plain": "2"}, execution_count=4)])])
    target = write_student(write(nb, tmp_path / "00_plain.ipynb"), tmp_path / "student")
    cell = nbformat.read(str(target), as_version=4).cells[0]
    assert cell.source == "1 + 1" and cell.outputs == [] and cell.execution_count is None


def test_mark_helpers_refuse_bad_ids_and_cells():
    with pytest.raises(ValueError, match="grade_id"):
        mark_solution(new_code_cell("pass"), "has space")
    with pytest.raises(ValueError, match="check cell must be a code cell"):
        mark_check(new_markdown_cell("x"), "x", 1)
    with pytest.raises(ValueError, match="points"):
        mark_check(new_code_cell("pass"), "x", -1)


# --- bad exercises: each message names the notebook, the cell (0-based) and the problem ------------


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("    ### END SOLUTION", "", "'### BEGIN SOLUTION' on line 6 has no '### END SOLUTION' after it"),
    ("    ### BEGIN SOLUTION\n", "", "'### END SOLUTION' on line 8 has no '### BEGIN SOLUTION' before it"),
    ("    y = x + x", "    ### BEGIN SOLUTION",
     "nested markers: '### BEGIN SOLUTION' on line 7 is inside the solution region opened on line 6"),
    ("    y = x + x", "    ### BEGIN HIDDEN TESTS\n    ### END HIDDEN TESTS",
     "nested markers: '### BEGIN HIDDEN TESTS' on line 7 is inside the solution region opened on line 6"),
    ("    ### BEGIN SOLUTION", "    y = 1  # BEGIN SOLUTION",
     "line 6 holds 'BEGIN SOLUTION' but is not the marker '### BEGIN SOLUTION' alone on its line"),
])
def test_bad_markers(old, new, expected):
    nb = exercise_notebook()
    nb.cells[1].source = nb.cells[1].source.replace(old, new)
    assert f"lesson.ipynb: cell 1 (0-based index): {expected}" in problem(nb)


def test_solution_without_check_cell():
    nb = exercise_notebook()
    del nb.cells[2].metadata["nbgrader"]
    nb.cells[2].source = "print('no check')"
    message = problem(nb, "notebooks/07_ddim.ipynb")
    assert message.startswith("notebooks/07_ddim.ipynb: cell 1 (0-based index): solution cell has no check "
                              "cell after it: the next code cell, cell 2, is not tagged as a check cell")
    nb = exercise_notebook()
    nb.cells = nb.cells[:2]
    expected = "cell 1 (0-based index): solution cell has no check cell after it (no code cell follows it)"
    assert expected in problem(nb)


def test_duplicate_grade_ids():
    nb = exercise_notebook()
    mark_check(nb.cells[2], "double", points=1)
    assert "cell 2 (0-based index): duplicate grade_id 'double' (cell 1 has it too)" in problem(nb)


def test_hidden_tests_outside_a_check_cell():
    nb = exercise_notebook()
    nb.cells[4].source = "### BEGIN HIDDEN TESTS\nassert True\n### END HIDDEN TESTS"
    assert "cell 4 (0-based index): hidden tests outside a check cell" in problem(nb)
    nb = exercise_notebook()
    nb.cells[3].source += "\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS"
    assert "cell 3 (0-based index): hidden tests outside a check cell" in problem(nb)


def test_untagged_solution_and_solution_without_markers():
    nb = exercise_notebook()
    del nb.cells[1].metadata["nbgrader"]
    assert "cell 1 (0-based index): holds a solution region but is not tagged as a solution" in problem(nb)
    nb = exercise_notebook()
    nb.cells[4].metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "z",
                                        "schema_version": 3}
    assert "cell 4 (0-based index): is tagged as a solution cell but has no '### BEGIN" in problem(nb)


def test_metadata_nbgrader_would_refuse():
    nb = exercise_notebook()
    del nb.cells[2].metadata["nbgrader"]["points"]
    assert "cell 2 (0-based index): a graded cell needs nbgrader points" in problem(nb)
    nb = exercise_notebook()
    nb.cells[3].metadata["nbgrader"]["grade"] = False
    assert "cell 3 (0-based index): a markdown answer cell must be both grade and solution" in problem(nb)


def test_every_problem_is_listed_on_one_line():
    nb = exercise_notebook()
    nb.cells[1].source = nb.cells[1].source.replace("    ### END SOLUTION", "")
    nb.cells[4].source = "### END HIDDEN TESTS"
    message = problem(nb)
    assert message.count("(0-based index)") == 2 and message.index("cell 1 (") < message.index("; cell 4 (")
    assert "; cell 4 (0-based index): '### END HIDDEN TESTS' on line 1" in message


# --- the command line --------------------------------------------------------------------------


def test_cli_student_writes_every_notebook(tmp_path, capsys):
    a = write(exercise_notebook(), tmp_path / "01_a.ipynb")
    b = write(new_notebook(cells=[new_markdown_cell("# 02 · B")]), tmp_path / "02_b.ipynb")
    out = tmp_path / "student"
    assert main(["student", str(a), str(b), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["01_a.ipynb", "02_b.ipynb"]
    assert f"wrote {out / '01_a.ipynb'}" in capsys.readouterr().out


def test_cli_default_is_every_lesson_of_notebooks(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    write(exercise_notebook(), tmp_path / "notebooks" / "03_c.ipynb")
    write(exercise_notebook(), tmp_path / "notebooks" / "scratch.ipynb")  # not a lesson: NN_ prefix
    monkeypatch.chdir(tmp_path)
    assert main(["check-student"]) == 2  # no student/ yet: refused, not "nothing to check"
    assert main(["student"]) == 0
    assert [p.name for p in (tmp_path / "student").iterdir()] == ["03_c.ipynb"]
    assert main(["check-student"]) == 0


def test_cli_bad_notebook_is_one_line_exit_1(tmp_path, capsys):
    nb = exercise_notebook()
    nb.cells[1].source = nb.cells[1].source.replace("    ### END SOLUTION", "")
    bad = write(nb, tmp_path / "05_bad.ipynb")
    assert main(["student", str(bad), "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"minildm.classroom: error: {bad}: cell 1 (0-based index): '### BEGIN SOLUTION'")
    assert not (tmp_path / "s" / "05_bad.ipynb").exists()
    (tmp_path / "06_json.ipynb").write_text("{not json")
    assert main(["student", str(tmp_path / "06_json.ipynb"), "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "06_json.ipynb: not a valid notebook" in err
    assert main(["student", str(tmp_path / "missing.ipynb"), "--out", str(tmp_path / "s")]) == 1
    assert "missing.ipynb: no such file" in capsys.readouterr().err
    with pytest.raises(ExerciseError):  # --debug: the exception itself
        main(["student", str(bad), "--out", str(tmp_path / "s"), "--debug"])


def test_check_student_refuses_a_folder_that_does_not_exist(tmp_path, capsys):
    source = write(exercise_notebook(), tmp_path / "04_d.ipynb")
    write_student(source, tmp_path / "student")
    assert main(["check-student", str(source), "--out", str(tmp_path / "studnet")]) == 2
    err = capsys.readouterr().err
    assert err == f"minildm.classroom: error: --out {tmp_path / 'studnet'}: no such folder\n"
    (tmp_path / "afile").write_text("x")
    assert main(["check-student", str(source), "--out", str(tmp_path / "afile")]) == 2
    assert f"--out {tmp_path / 'afile'}: is a file; expected a folder" in capsys.readouterr().err
    assert main(["check-student", str(source), "--out", str(tmp_path / "student")]) == 0


def test_student_out_that_is_a_file_is_one_line_naming_the_flag(tmp_path, capsys):
    source = write(exercise_notebook(), tmp_path / "04_d.ipynb")
    target = tmp_path / "student.ipynb"
    target.write_text("mine")
    assert main(["student", str(source), "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err == f"minildm.classroom: error: --out {target}: is a file; expected a folder\n"
    assert target.read_text() == "mine"
    with pytest.raises(ValueError, match="is a file"):  # --debug: the exception itself
        main(["student", str(source), "--out", str(target), "--debug"])


def test_check_student_detects_a_stale_file(tmp_path, capsys):
    source = write(exercise_notebook(), tmp_path / "04_d.ipynb")
    out = tmp_path / "student"
    write_student(source, out)
    assert main(["check-student", str(source), "--out", str(out)]) == 0
    assert stale_students([source], out) == []
    nb = exercise_notebook()
    nb.cells[0].source = "# 04 · D, edited"
    write(nb, source)
    assert main(["check-student", str(source), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out / '04_d.ipynb'} (differs)" in err and "make student" in err
    (out / "04_d.ipynb").unlink()
    assert stale_students([source], out) == [f"{out / '04_d.ipynb'} (missing)"]
    write_student(source, out)
    write(exercise_notebook(), out / "08_gone.ipynb")
    assert stale_students([source], out) == [f"{out / '08_gone.ipynb'} (no notebook of that name)"]


def test_package_imports_neither_torch_nor_minildm():
    code = ("import sys, minildm.classroom, minildm.classroom.cli, minildm.classroom.site, "
            "minildm.classroom.browser, minildm.classroom.teaching\n"
            "bad = [m for m in sys.modules if m == 'torch' or (m.startswith('minildm.') "
            "and not m.startswith('minildm.classroom'))]\nassert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_teaching_guide_has_a_row_per_lesson():
    guide = (ROOT / "docs" / "teaching.md").read_text()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert f"](../notebooks/{path.name}) |" in guide, f"docs/teaching.md has no row for {path.name}"


# --- the committed student notebooks, executed (slow: marked ``student``) -------------------------


@pytest.mark.student
@pytest.mark.skipif(not STUDENT_NOTEBOOKS, reason="no student/NN_*.ipynb yet (make student writes them)")
@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=[p.name for p in STUDENT_NOTEBOOKS])
def test_student_notebook_fails_only_in_its_exercises(path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("MINILDM_BUDGET", "quick")
    monkeypatch.setenv("MINILDM_PROGRESS", "0")
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=1800,
                   resources={"metadata": {"path": str(ROOT)}}).execute(cwd=str(ROOT), env=dict(os.environ))
    failed = {i: out for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
              for out in cell.outputs if out.output_type == "error"}
    # the learner's functions: a cell that calls one (a lesson cell using exercise 5.1's loss) fails in it
    theirs = {name for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("solution")
              for name in re.findall(r"^def (\w+)", cell.source, re.M)}
    for index, error in failed.items():
        meta = nb.cells[index].metadata.get("nbgrader", {})
        calls_theirs = any(f"{name}(" in nb.cells[index].source and name in "".join(error.traceback)
                           for name in theirs)
        assert meta.get("grade") or meta.get("solution") or calls_theirs, (
            f"{path.name}: cell {index} (0-based index) is not an exercise but raised "
            f"{error.ename}: {error.evalue}")
        assert error.ename == "NotImplementedError", (
            f"{path.name}: exercise cell {index} (0-based index) raised {error.ename}: {error.evalue}")
