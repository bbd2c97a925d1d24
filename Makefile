# Thin wrappers; the logic lives in scripts/.
.PHONY: demo test lint bench
demo:
	scripts/demo.sh
test:
	scripts/test.sh
lint:
	scripts/test.sh tests/static
bench:
	scripts/bench.sh
