# syntax=docker/dockerfile:1
# Lifeline's worker and codec server (docker-compose.temporal.yml builds it; README, "Deploying").
#   docker build -t lifeline .
#   docker run --rm lifeline --help
ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: dependencies, compiled JavaScript and the pre-bundled workflows ---
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# Everything .dockerignore lets through: sources, bin/, scripts/, tsconfig*.json.
COPY . .
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && test -f dist/src/cli/main.js \
 && test -f dist/workflow-bundle.js

# --- runtime: node, the PostgreSQL client tools, zstd, tini; runs as an unprivileged user ---
FROM ${NODE_IMAGE}
# Lifeline runs the newest pg_dump/pg_restore installed (src/postgres/binaries.ts): those of PostgreSQL 17
# dump servers 13-17 and restore archives of any of them. Older majors are only of use with LIFELINE_PG_BIN,
# e.g. --build-arg PG_CLIENT_MAJORS="13 17"; a newer major (18) serves newer servers as well.
ARG PG_CLIENT_MAJORS="17"
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    . /etc/os-release; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt ${VERSION_CODENAME}-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends zstd tini $(for v in ${PG_CLIENT_MAJORS}; do echo "postgresql-client-$v"; done); \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/*; \
    for v in ${PG_CLIENT_MAJORS}; do /usr/lib/postgresql/$v/bin/pg_dump --version; done; \
    zstd --version

# The repository and the key file live in volumes mounted here (named volumes copy this ownership).
RUN groupadd --system --gid 10001 lifeline \
 && useradd --system --uid 10001 --gid lifeline --home-dir /var/lib/lifeline --shell /usr/sbin/nologin lifeline \
 && install -d -o lifeline -g lifeline -m 0700 /var/lib/lifeline /var/lib/lifeline/backups /var/lib/lifeline/keys \
 && install -d -m 0755 /etc/lifeline

# What runs, owned by root (the worker cannot change it): the compiled code and its bundled workflows,
# production node_modules, bin/. No sources: bin/lifeline.js then runs dist/ without asking whether it is stale.
COPY --from=build /app/package.json /app/package.json
COPY --from=build /app/node_modules /app/node_modules
COPY --from=build /app/bin /app/bin
COPY --from=build /app/dist /app/dist
ENV BACKUP_DIR=/var/lib/lifeline/backups \
    BACKUP_ENCRYPTION_KEY=/var/lib/lifeline/keys/master.key
USER lifeline:lifeline
WORKDIR /var/lib/lifeline
EXPOSE 8888 9464
# tini is PID 1: it reaps zstd/pg_dump children and passes SIGTERM on, so the worker drains
# (LIFELINE_SHUTDOWN_GRACE_SECONDS) before the container stops.
ENTRYPOINT ["/usr/bin/tini", "--", "/app/bin/lifeline.js"]
CMD ["worker"]
