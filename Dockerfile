# etcd-adapter as a container: the etcd v3 API (gRPC and HTTP/JSON) on :2379.
# Build: docker build -t etcd-adapter .   Run: docker run -p 2379:2379 etcd-adapter
# Flags given to `docker run` are added to the defaults below (set through etcd's environment
# variables, so they stay when a flag is given): docker run -p 2379:2379 etcd-adapter --backend memory
FROM node:20-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 compiles from source
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json ./
COPY proto ./proto
COPY src ./src
COPY drivers ./drivers
COPY bin ./bin
COPY scripts ./scripts
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY --from=build /app/proto ./proto
COPY LICENSE ./
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 2379
# Listen on every interface of the container (the server's own default is 127.0.0.1).
# Override with -e ETCD_ADVERTISE_CLIENT_URLS=http://<reachable host>:2379 for member lists.
ENV ETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:2379 \
    ETCD_DATA_DIR=/data
ENTRYPOINT ["node", "bin/etcd-adapter"]
