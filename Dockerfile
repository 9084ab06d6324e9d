# effect-exec serve in a container: a slim Node image, a non-root user, and
# nothing written outside /work and /tmp (Kubernetes mounts the work volume
# and a scratch /tmp there, and makes the rest of the file system read-only;
# see deploy/).

# Build: dist/, with the CLI bundled into one file (effect and ws inside it).
FROM node:24.21.0-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
# no install scripts: the image's Node is the one used (not the `node` dev dependency's)
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY bin ./bin
COPY scripts ./scripts
COPY src ./src
RUN node scripts/build.ts

# Run: the bundle, and the one native add-on it loads from the installed package (terminals).
FROM node:24.21.0-bookworm-slim
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/dist/effect-exec.cjs /src/dist/cli.cjs ./dist/
COPY --from=build /src/node_modules/@lydell ./node_modules/@lydell
# the image's own unprivileged user `node` (uid 1000), by number so Kubernetes can check runAsNonRoot
RUN mkdir -p /work && chown 1000:1000 /work
USER 1000:1000
WORKDIR /work
ENV HOME=/work TMPDIR=/tmp NODE_ENV=production

EXPOSE 4000
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/dist/effect-exec.cjs"]
# off loopback the server refuses to listen without a token: it comes from a file (a mounted Secret)
CMD ["serve", "--listen", "ws://0.0.0.0:4000", "--token-file", "/var/run/secrets/effect-exec/token"]
