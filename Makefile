# wander: two commands on a fresh machine
#   make demo   - install, build a 1.05 deg twisted bilayer graphene and plot its flat bands
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
	wander twist --material graphene --angle 1.05 -o $(OUT)/tbg.extxyz
	wander bands --structure $(OUT)/tbg.extxyz --tb-model moon-koshino --n-bands 8 --npoints 30 -o $(OUT)/bands.png

test: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} MPLBACKEND=Agg $(PYTHON) -m pytest -q

bench: install
	$(PYTHON) bench/run.py
