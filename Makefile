# The two commands a user needs (see README.md):
#   make test   set everything up and run the test suite
# Everything else is a convenience over tools/.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test
setup:
	bash tools/setup_env.sh

test:
	bash tools/run_tests.sh
