# minildm: the two commands of the README's quick start, and a few helpers.
#   make demo   create .venv if missing, install minildm, run the demo (prints the picture's path)
#   make test   same with the dev extras, then unit tests + nbval over every notebook, and
#               check that student/ holds what `make student` writes and docs/teaching.md
#               what `make teaching` writes (everything: 20 to 50 minutes on 2 cores)
#   make unit   the fast tier while you work: ruff, then the tests not marked slow (`pytest -m fast`,
#               tests/conftest.py says what is slow)
#   make student   the student notebooks: student/NN_*.ipynb (solutions stubbed, outputs cleared)
#   make site      the student site: site/index.html (student/, no solutions; nothing executed)
#   make site-teacher   the teacher's site: site-teacher/index.html (notebooks/ and docs/teaching.md)
#   make teaching  fill in docs/teaching.md's generated table from the notebooks
#   make checkpoints   retrain every shipped checkpoint (VAE, CLIP, U-Nets, in order) into
#                  outputs/retrained, logs in outputs/retrained/logs, then the quality table
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# run notebooks and tests in the quick budget unless told otherwise (full is the default with CUDA)
PYTEST_ARGS ?=

.PHONY: demo test unit notebooks lint execute-notebooks bench clean student site site-teacher teaching checkpoints

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m minildm demo

test: $(VENV)/.installed-dev
	$(PY) -m ruff check minildm tests notebooks bench
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env \
		--nbval-sanitize-with nbval_sanitize.cfg --nbval-cell-timeout 900 $(PYTEST_ARGS)
	$(PY) -m minildm.classroom check-student
	$(PY) -m minildm.classroom teaching --check

unit: $(VENV)/.installed-dev
	$(PY) -m ruff check minildm tests notebooks bench
	$(PY) -m pytest tests -m fast -q $(PYTEST_ARGS)

notebooks: $(VENV)/.installed-dev
	$(PY) -m pytest notebooks --nbval-lax --nbval-current-env \
		--nbval-sanitize-with nbval_sanitize.cfg --nbval-cell-timeout 900 $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check minildm tests notebooks bench

# re-execute every notebook in place so its stored outputs are what the code prints now
# (no progress bars stored: a bar frozen at "0%" reads as if training never ran)
NOTEBOOKS ?= notebooks/*.ipynb
execute-notebooks: $(VENV)/.installed-dev
	MINILDM_PROGRESS=0 $(PY) -m jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=900 $(NOTEBOOKS)

bench: $(VENV)/.installed-dev
	$(PY) bench/shapes_world.py
	$(PY) bench/pixel_ddpm.py
	$(PY) bench/latent_diffusion.py
	$(PY) bench/text_to_image.py
	$(PY) bench/ddim.py
	$(PY) bench/img2img.py
	$(PY) bench/composition.py
	$(PY) bench/solvers.py
	$(PY) bench/distillation.py
	$(PY) bench/train_speed.py

# retrain every shipped checkpoint from scratch (minildm.retrain; RETRAIN_ARGS e.g. --resume)
RETRAIN_ARGS ?=
checkpoints: $(VENV)/.installed
	$(PY) -m minildm.retrain $(RETRAIN_ARGS)

# the classroom layer (minildm.classroom, docs/teaching.md): student/ is committed, the sites are not
student: $(VENV)/.installed-dev
	$(PY) -m minildm.classroom student

site: $(VENV)/.installed-dev
	$(PY) -m minildm.classroom site

site-teacher: $(VENV)/.installed-dev
	$(PY) -m minildm.classroom site --teacher

teaching: $(VENV)/.installed-dev
	$(PY) -m minildm.classroom teaching

clean:
	rm -rf $(VENV) outputs .pytest_cache
