# syntax=docker/dockerfile:1
# The community brain (社区大脑). `docker run IMAGE` runs `cbrain run --config /etc/cbrain/site.yaml`
# (mount a site file there); any other cbrain command may be given instead, e.g. `simulate ...`.

# Build stage: wheels of the project and of every dependency, so that the runtime image carries
# neither the source tree nor anything a build needed.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A bind mount of the wheels (BuildKit, Docker's default builder since 23.0) keeps them out of every layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels community-brain

# A fixed uid, so that the owner of the state volume is the same in every build.
RUN groupadd --system --gid 10001 cbrain \
    && useradd --system --uid 10001 --gid cbrain --home-dir /var/lib/cbrain --no-create-home \
       --shell /usr/sbin/nologin cbrain \
    && mkdir -p /etc/cbrain /var/lib/cbrain \
    && chown cbrain:cbrain /var/lib/cbrain
# A new named volume mounted here starts as a copy of this directory, owned by cbrain, so the
# service can write its state; relative paths in a site file (state_dir: ./var) land here too.
# No VOLUME instruction: it would leave an anonymous volume behind every one-off `docker run`.
WORKDIR /var/lib/cbrain
USER cbrain

EXPOSE 8000
# /health answers 503 while the broker or InfluxDB is down, which urllib raises as an error. The
# port follows CB_HTTP_PORT; a site file that moves http.port needs this check overridden. No proxy:
# an http_proxy in the environment must not swallow a request to the container itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.build_opener(urllib.request.ProxyHandler({})).open('http://127.0.0.1:%s/health' % os.environ.get('CB_HTTP_PORT', '8000'), timeout=4)"]

# cbrain runs as PID 1 and handles SIGTERM itself: it stops the sources first and drains its queues.
ENTRYPOINT ["cbrain"]
CMD ["run", "--config", "/etc/cbrain/site.yaml"]
