# One image for the code location and the run workers.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DAGSTER_HOME=/opt/dagster/home
WORKDIR /opt/spotlake

RUN useradd --create-home --uid 10001 spotlake && mkdir -p /opt/dagster/home && chown spotlake /opt/dagster/home

# Dependencies in their own layer, before the source, so code changes rebuild only the last layers.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir spotlake_assets && touch spotlake_assets/__init__.py \
    && pip install --no-cache-dir -c constraints.txt . \
    && pip uninstall -y spotlake-assets && rm -rf spotlake_assets

COPY spotlake_assets ./spotlake_assets
COPY workspace.yaml ./
RUN pip install --no-cache-dir --no-deps -c constraints.txt .

USER spotlake
EXPOSE 4000
CMD ["dagster", "api", "grpc", "--module-name", "spotlake_assets.definitions", "--host", "0.0.0.0", "--port", "4000"]
