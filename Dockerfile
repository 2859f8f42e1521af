# One image for the web app and the workers; the extras decide what is installed.
#   docker build --build-arg EXTRAS=pipeline -t quilt-curator .           (web, cpu worker)
#   docker build --build-arg EXTRAS=pipeline,train -t quilt-curator:gpu . (gpu worker)
FROM python:3.11-slim-bookworm
ARG EXTRAS=pipeline
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/quilt
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY demo ./demo
RUN pip install --no-cache-dir -e ".[${EXTRAS}]"
RUN useradd --create-home quilt && mkdir -p /data && chown quilt /data
USER quilt
ENV QUILT_VAR_DIR=/data
EXPOSE 8000
CMD ["quilt", "serve", "--host", "0.0.0.0", "--port", "8000"]
