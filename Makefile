# The two commands a user needs (see README.md):
#   make demo   set everything up and run qamoe-live on the demo clip with the shipped checkpoint
#   make test   set everything up and run the test suite
# Everything else is a convenience over tools/.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo
setup:
	bash tools/setup_env.sh

test:
	bash tools/run_tests.sh

demo:
	bash tools/demo.sh
