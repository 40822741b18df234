# The infini-svc services in one image. The command picks the service:
#   docker run -p 8000:8000 -p 18000:18000 infini-svc                 # a local cluster of mocks (up)
#   docker run -p 18000:18000 infini-svc registry --port 18000 --state-file /data/registry.json
#   docker run -p 8000:8000 infini-svc router --router-port 8000 --registry-url http://registry:18000
#   docker run -e BABYSITTER_HOST=10.0.0.5 infini-svc up   # with LAUNCH_COMPONENTS, as the original entrypoint
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
COPY bin ./bin
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# up binds 127.0.0.1 by default; in a container that is the container's own loopback, which
# published ports never reach
ENV INFINI_UP_BIND=0.0.0.0
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY examples ./examples
VOLUME ["/data"]
EXPOSE 8000 18000
# V8 flags as in src/common/node-flags.ts (README, Performance)
ENTRYPOINT ["node", "--max-semi-space-size=8", "--no-allocation-site-pretenuring", "/app/dist/src/cli.js"]
CMD ["up", "--data-dir", "/data"]
