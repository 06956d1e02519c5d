# syntax=docker/dockerfile:1
# Conduit api / worker / migrate image (docker-compose.yml picks the entry point with `command`):
#   node dist/api/server.js · node dist/worker.js · node dist/db/migrate-cli.js
#
# Debian (glibc), not Alpine: the Temporal SDK's native core and SWC (which bundles the workflow
# code, at build time into dist/workflow-bundle.js) ship glibc builds.
# Only package*.json, tsconfig*.json, dev/build.ts, dev/patch-dependencies.cjs and src/ are needed to build the image.

ARG NODE_VERSION=20

# --- build: compile TypeScript to dist/ (dev/build.ts: tsc, then src/'s non-TypeScript files) ---
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm ci's postinstall: fixes to installed dependencies not yet released upstream.
COPY dev/patch-dependencies.cjs ./dev/patch-dependencies.cjs
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY dev/build.ts ./dev/build.ts
COPY src ./src
RUN npm run build

# --- deps: production node_modules only (dev dependencies pruned) ------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY dev/patch-dependencies.cjs ./dev/patch-dependencies.cjs
RUN npm ci --omit=dev && npm cache clean --force

# --- runtime -----------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# Workers load the workflows bundled by `npm run build` instead of bundling them at every start.
ENV WORKFLOW_BUNDLE_PATH=/app/dist/workflow-bundle.js
# The code stays root-owned and read-only to the process; it runs as the image's unprivileged user.
USER node
# 3000: the API (PORT); 9464: the worker's metrics and health port (WORKER_METRICS_PORT).
EXPOSE 3000 9464
CMD ["node", "dist/api/server.js"]
