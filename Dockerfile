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

# Dependencies in their own layer, before the source, so a code change rebuilds only the last layers. An empty
# package stands in for the source while pip resolves the project's dependencies against the pinned constraints.
COPY pyproject.toml constraints.txt README.md ./
COPY infra/image-requirements.txt ./infra/image-requirements.txt
RUN mkdir spotlake_assets && touch spotlake_assets/__init__.py \
    && pip install -c constraints.txt . -r infra/image-requirements.txt \
    && pip uninstall -y spotlake-assets \
    && rm -rf spotlake_assets

COPY spotlake_assets ./spotlake_assets
RUN pip install --no-deps .

# The production instance and the control plane's workspace (env references only, no secrets).
COPY infra/dagster.yaml /opt/dagster/home/dagster.yaml
COPY infra/workspace.yaml /opt/dagster/workspace.yaml

USER spotlake
EXPOSE 4000
CMD ["dagster", "api", "grpc", "--module-name", "spotlake_assets.definitions", "--host", "0.0.0.0", "--port", "4000"]
