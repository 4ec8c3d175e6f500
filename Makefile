# Quick start:  make run   (the service, after .env is filled in)
#               make test  (the test suite)
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint check-config test-servers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	@test -f .env || { echo "Salin .env.example ke .env dan isi dulu / copy .env.example to .env and fill it in"; exit 2; }
	$(BIN)/lpse-helpdesk run

check-config: $(VENV)/.installed
	$(BIN)/lpse-helpdesk check-config

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check lpse_helpdesk
	$(BIN)/mypy lpse_helpdesk bench tests

# Real IMAP and PostgreSQL servers, and systemd-analyze for the unit, for the tests (Debian/Ubuntu, as root).
test-servers:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd postgresql systemd

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
