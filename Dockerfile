# The IPT API: a slim, non-root image that migrates the database and then serves on port 8000.
#
#   docker build -t ipt-api .
#   docker run -p 8000:8000 \
#     -e IPT_SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')" \
#     -e IPT_DATABASE_URL=postgresql://ipt:secret@db.internal:5432/ipt \
#     ipt-api
#
# IPT_SECRET_KEY and IPT_DATABASE_URL must be provided: the image holds no secret, and with
# IPT_ENV=production the service refuses to start without a real key (at least 32 bytes).
# The other IPT_* settings (README.md) can be passed the same way; behind a reverse proxy, set
# IPT_TRUSTED_PROXIES to its address (uvicorn's own X-Forwarded-For handling is off in ipt serve).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in their own layer, rebuilt only when pyproject.toml changes: install the
# [project] dependencies list read from pyproject.toml (every one ships binary wheels, so no
# compiler is needed), plus setuptools to install the app itself below without a network build.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt "setuptools>=69" \
    && rm /tmp/requirements.txt

# The app. Installed in place (editable) rather than into site-packages: `ipt db upgrade` finds
# alembic.ini and migrations/ next to the app package. Bytecode is compiled now, as root, since
# the runtime user cannot write here.
COPY README.md alembic.ini ./
COPY migrations ./migrations
COPY app ./app
RUN pip install --no-deps --no-build-isolation -e . \
    && python -m compileall -q app migrations

RUN useradd --system --user-group --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ipt
USER ipt

ENV IPT_ENV=production
EXPOSE 8000

# python, not curl: the slim image has no curl. /healthz does not touch the database.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

# Migrate, then replace the shell with the server so it receives SIGTERM from `docker stop`.
CMD ["sh", "-c", "ipt db upgrade && exec ipt serve --host 0.0.0.0 --port 8000"]
