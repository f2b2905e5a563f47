# Two commands do all the set-up on a fresh clone:  make demo   and   make test
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install system-deps lock clean

# Exact versions from requirements.lock (refresh with scripts/lock.sh); torch is the CPU 2.13.0 build.
$(STAMP): pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -r requirements.lock
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Debian tools the tests compare against (dciodvfy, plastimatch, dcmtk peers, headless Chromium). Needs root.
DEBIAN_TOOLS := dciodvfy plastimatch storescu storescp chromium chromedriver
system-deps:
	@for t in $(DEBIAN_TOOLS); do command -v $$t >/dev/null || missing=1; done; \
	  [ -z "$$missing" ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    dicom3tools plastimatch dcmtk chromium chromium-driver)

demo: $(STAMP)
	$(VENV)/bin/cervseg demo --out demo-output

test: $(STAMP) system-deps
	$(PY) -m pytest -n 2 --dist loadfile -q

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not slow"

lock:
	scripts/lock.sh

clean:
	rm -rf $(VENV) demo-output
