# wander: two commands on a fresh machine
#   make demo   - install, relax a 1.05 deg twisted bilayer graphene with the shipped model, plot its flat bands
#   make test   - install, run the test suite
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
OUT ?= demo

.PHONY: install demo test bench

install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[ml,test]"

demo: install
	mkdir -p $(OUT)
	wander run --material graphene --angle 1.05 --compare-rigid --npoints 30 --fmax 0.001 --steps 600 -o $(OUT)

test: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} MPLBACKEND=Agg $(PYTHON) -m pytest -q

bench: install
	$(PYTHON) bench/run.py
