# The two commands a newcomer needs:  make demo   and   make test
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup demo test lint compile clean-data image image-test

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]" -c constraints.txt
	touch $@

setup: $(BIN)/.installed  ## create .venv and install the project with its dev tools

demo: setup  ## generate a synthetic marketplace into SQLite and run the local pipeline
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/demo.sh

test: setup  ## start Redis/PostgreSQL if needed, install helm/promtool, lint, run the whole test suite
	scripts/start_services.sh
	scripts/install_tools.sh
	$(BIN)/ruff check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

compile: setup  ## write the KFP IR YAML of the training pipeline
	$(BIN)/recsys pipeline compile -o build/recsys-training.yaml

image:  ## build the project's image (buildah, else docker/podman) as recsys.IMAGE; prints its name last
	scripts/build_image.sh

image-test: setup  ## test the built image from outside (buildah run): CLI, pipeline, both servers, non-root
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q image/tests

clean-data:  ## remove the demo's working directory
	rm -rf data
