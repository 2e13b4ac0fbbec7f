# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
AVATARS ?= avatars
DEMO_AVATAR := $(AVATARS)/demo

.PHONY: demo test bench lint system-deps browser-deps node-deps clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Debian packages the browser tests need; installed only when missing (we run as root on CI).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The JavaScript twins (web/mixer.js, sync.js, protocol, compose.js) are tested in node: never skipped.
node-deps:
	@command -v node >/dev/null 2>&1 || { \
	  echo "installing Debian's nodejs for the JavaScript twin tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null; }

demo: $(STAMP)
	$(PY) -m photoavatar.cli demo --avatars $(AVATARS)

test: $(STAMP) browser-deps node-deps
	$(PY) -m pytest -q

# Benchmarks print tables of medians; run them on a quiet machine. bench/live.py also needs chromium.
bench: $(STAMP) browser-deps node-deps
	$(PY) bench/avatarize.py
	$(PY) bench/face_limits.py
	$(PY) bench/speech.py
	$(PY) bench/stretches.py
	$(PY) bench/run_on.py
	$(PY) bench/opus.py
	$(PY) bench/audio_visemes.py
	$(PY) bench/live_sessions.py
	$(PY) bench/live.py
	$(PY) bench/live_video.py
	$(PY) bench/say_mouth.py
	$(PY) bench/upload_load.py
	$(PY) bench/soak.py  # 10 sessions x 30 min

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
