# syntax=docker/dockerfile:1
# Conduit api / worker / migrate image (docker-compose.yml picks the entry point with `command`).
#
# Debian (glibc), not Alpine: the Temporal SDK's native core and SWC (which the worker uses to
# bundle workflow code at start-up) ship glibc builds.

ARG NODE_VERSION=20

# --- build: compile TypeScript to dist/ -------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Install scripts are only needed by the dev tooling (embedded Postgres symlinks, esbuild checks).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- deps: production node_modules only --------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- runtime -----------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The code stays root-owned and read-only to the process; it runs as the image's unprivileged user.
USER node
EXPOSE 3000
CMD ["node", "dist/api/server.js"]
