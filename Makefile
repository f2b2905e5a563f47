# Two commands do all the set-up on a fresh clone:  make demo   and   make test
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install system-deps clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Debian tools the tests compare against (dciodvfy, plastimatch, dcmtk). Needs root.
system-deps:
	@command -v dciodvfy >/dev/null && command -v plastimatch >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools plastimatch dcmtk)

demo: $(STAMP)
	$(VENV)/bin/cervseg demo --out demo-output

test: $(STAMP) system-deps
	$(PY) -m pytest -n 2 --dist loadfile -q

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not slow"

clean:
	rm -rf $(VENV) demo-output
