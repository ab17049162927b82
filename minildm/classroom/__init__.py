"""minildm.classroom: the course's classroom tooling (exercises with automatic checks, student
notebooks, the offline student and teacher sites, the teacher's guide's lesson table). It is
notebook tooling: it imports neither torch nor the rest of minildm, only nbformat (and nbconvert
for the sites).

The exercise convention (nbgrader's, so that ``nbgrader generate_assignment`` / ``autograde``
work on the lesson notebooks as they are; ``docs/teaching.md`` says the same for teachers):

- An exercise's **solution cell** is a code cell whose source holds the lines
  ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (each alone on its line, any indentation); the
  code between them is the solution. Solutions are function bodies, so that a student notebook
  still runs past an unsolved exercise::

      def ddim_step(x_t, eps, alpha_bar_t, alpha_bar_prev):
          ### BEGIN SOLUTION
          x0 = (x_t - (1 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t ** 0.5
          return alpha_bar_prev ** 0.5 * x0 + (1 - alpha_bar_prev) ** 0.5 * eps
          ### END SOLUTION

  The student version replaces each region, markers included, by ``# YOUR CODE HERE`` and
  ``raise NotImplementedError()`` at the BEGIN marker's indentation.
- A markdown cell may hold the same markers (the answer to a "predict, then run" question); the
  student version shows ``YOUR ANSWER HERE`` instead.
- The **check cell** is the next code cell after a solution code cell. It asserts the student's
  function against the module, e.g. with ``torch.testing.assert_close(ddim_step(...), expected,
  msg="...")`` and a helpful message. It may hold hidden tests between ``### BEGIN HIDDEN TESTS``
  and ``### END HIDDEN TESTS``: the student version drops them (nbgrader's autograde puts them back).
- Cell metadata: a solution code cell carries ``"nbgrader": {"solution": true, "grade": false,
  "locked": false, "grade_id": "<unique id>", "schema_version": 3}``; a check cell carries
  ``{"solution": false, "grade": true, "locked": true, "points": <int>, "grade_id": "<unique id>",
  "schema_version": 3}``; a markdown answer cell is ``solution`` *and* ``grade`` (nbgrader requires
  both for markdown; it is graded by hand) with ``points`` (0 for an ungraded reflection).
  :func:`mark_solution` and :func:`mark_check` set these, e.g. from a script::

      nb = nbformat.read(path, as_version=4)
      mark_solution(nb.cells[12], "ddim_step")
      mark_check(nb.cells[13], "ddim_step_check", points=2)
      nbformat.write(nb, path)

- grade_ids are unique in a notebook and made of letters, digits, ``_`` and ``-``.

:func:`validate_exercises` (and every command) rejects, with an :class:`ExerciseError` naming the
notebook, the cell's 0-based index and the problem: unbalanced markers (BEGIN without END, END
without BEGIN), nested markers (BEGIN inside BEGIN, hidden tests inside a solution), a marker's
words on a line that is not the marker alone, a solution code cell whose next code cell is not a
check cell, solution markers in a cell not tagged as a solution (or a solution cell without
markers), hidden tests outside a check cell, duplicate grade_ids, and nbgrader metadata that
nbgrader's schema (version 3) would refuse.

Commands (``python -m minildm.classroom --help``): ``student`` (``make student``),
``check-student`` (run by ``make test``), ``site`` (``make site``, the student site; ``--teacher``:
``make site-teacher``) and ``teaching`` (``make teaching``; ``--check`` is run by ``make test``).
"""

from minildm.classroom.exercises import ExerciseError, mark_check, mark_solution
from minildm.classroom.student import make_student, validate_exercises, write_student

__all__ = ["ExerciseError", "make_student", "mark_check", "mark_solution", "validate_exercises",
           "write_student"]
