# effect-exec serve in a container: a slim Node image, a non-root user, and
# nothing written outside /work and /tmp (Kubernetes mounts one work volume
# there and makes the rest of the file system read-only; see deploy/).
FROM node:24.21.0-bookworm-slim

WORKDIR /app
COPY package.json package-lock.json ./
# effect and @effect/platform-node are the library's peer dependencies, which
# `npm ci --omit=dev` leaves out: the server needs them, so they become plain
# dependencies here, at the versions the lock file pins.
RUN node -e 'const fs = require("node:fs"); const p = JSON.parse(fs.readFileSync("package.json", "utf8")); \
      p.dependencies = { ...p.dependencies, ...p.peerDependencies }; delete p.devDependencies; delete p.peerDependencies; \
      fs.writeFileSync("package.json", JSON.stringify(p, null, 2))' \
 && npm install --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force
COPY bin ./bin
COPY src ./src

# the image's own unprivileged user `node` (uid 1000), by number so Kubernetes can check runAsNonRoot
RUN mkdir -p /work && chown 1000:1000 /work
USER 1000:1000
WORKDIR /work
ENV HOME=/work TMPDIR=/tmp NODE_ENV=production

EXPOSE 4000
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/bin/effect-exec.js"]
# off loopback the server refuses to listen without a token: it comes from a file (a mounted Secret)
CMD ["serve", "--listen", "ws://0.0.0.0:4000", "--token-file", "/var/run/secrets/effect-exec/token"]
