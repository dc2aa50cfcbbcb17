# syntax=docker/dockerfile:1
# wal-listener: build with the full toolchain, run on a slim Node 22 image as a non-root user.
#   docker build -t wal-listener .
#   docker run --rm -v "$PWD/config.yml:/app/config.yml:ro" -e WAL_DATABASE_PASSWORD=… -p 8080:8080 -p 2112:2112 wal-listener

ARG NODE_IMAGE=node:22-bookworm-slim

# --- build: TypeScript → dist/ ------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
# Install scripts are not needed to compile (tsc only); skipping them also skips the demo's
# embedded PostgreSQL setup.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies and dist/ only ------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY config_example.yml LICENSE ./
# The image's unprivileged `node` user (uid 1000); the app files stay owned by root (read-only to it).
USER node
# listener.serverPort (/healthz, /ready) and monitoring.promAddr (/metrics), when configured so.
EXPOSE 8080 2112
# Mount the config at /app/config.yml (e.g. a ConfigMap); pass secrets as WAL_* variables.
# Node handles SIGTERM itself (drain, confirm, exit 0); it starts no child processes to reap.
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["--config", "/app/config.yml"]
