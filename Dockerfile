# One image for the whole platform: the code location (default command), the AWS Batch run workers (the run
# launcher overrides the command with `dagster api execute_run ...`) and the control plane's webserver and
# daemon (their ECS task definitions override the command). Build: scripts/build_and_push.sh.

# Exact tag: rebuilding the same commit gives the same Python and Debian base.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home
WORKDIR /opt/spotlake

RUN useradd --create-home --uid 10001 --user-group spotlake \
    && mkdir -p /opt/dagster/home/storage \
    && chown -R spotlake:spotlake /opt/dagster/home

# Dependencies in their own layer, keyed on the dependency declarations only (pyproject.toml, constraints.txt
# and the image's extra requirements), so a change to the source or the README rebuilds only the last layers.
# An empty package and README stand in for the real ones while pip resolves against the pinned constraints.
COPY pyproject.toml constraints.txt ./
COPY infra/image-requirements.txt ./infra/image-requirements.txt
RUN mkdir spotlake_assets && touch spotlake_assets/__init__.py README.md \
    && pip install -c constraints.txt . -r infra/image-requirements.txt \
    && pip uninstall -y spotlake-assets \
    && rm -rf spotlake_assets README.md build

COPY README.md ./
COPY spotlake_assets ./spotlake_assets
RUN pip install --no-deps . && rm -rf build

# The production instance and the control plane's workspace (env references only, no secrets).
COPY infra/dagster.yaml /opt/dagster/home/dagster.yaml
COPY infra/workspace.yaml /opt/dagster/workspace.yaml

# One probe for every role of the image: it checks what PID 1 runs (code server, webserver, daemon; a run
# worker needs none, Batch watches its process). ECS task definitions call the same script.
COPY --chmod=755 scripts/healthcheck.sh /usr/local/bin/spotlake-healthcheck
HEALTHCHECK --interval=30s --timeout=15s --start-period=120s --retries=3 CMD ["/usr/local/bin/spotlake-healthcheck"]

USER spotlake
EXPOSE 4000
CMD ["dagster", "api", "grpc", "--module-name", "spotlake_assets.definitions", "--host", "0.0.0.0", "--port", "4000"]
