/**
 * The container and the Kubernetes manifests, checked offline (no cluster and
 * no Docker engine here): every object against the Kubernetes schemas
 * (`kubernetes-models`' validators, and its TypeScript types for unknown
 * fields), and everything they name against what exists — ports, the health
 * path, the Secret and its key, the user, the writable places, the limits,
 * and the entrypoint's flags, which the real CLI must accept and serve with.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet"
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy"
import { Service } from "kubernetes-models/v1/Service"
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as Http from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseAllDocuments } from "yaml"
import packageJson from "../package.json" with { type: "json" }
import * as Defaults from "../src/internal/defaults.ts"
import * as WebSocketListener from "../src/WebSocketListener.ts"
import { bin, spawnServe } from "./support/servers.ts"

const root = fileURLToPath(new URL("..", import.meta.url))
const manifestText = readFileSync(join(root, "deploy", "effect-exec.yaml"), "utf8")
const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8")
const documents = parseAllDocuments(manifestText).map((document) => document.toJS() as any)
const byKind = (kind: string) => {
  const found = documents.filter((document) => document.kind === kind)
  assert.strictEqual(found.length, 1, `one ${kind}`)
  return found[0]
}
const statefulSet = byKind("StatefulSet")
const service = byKind("Service")
const networkPolicy = byKind("NetworkPolicy")
const pod = statefulSet.spec.template.spec
const container = pod.containers[0]
const args: ReadonlyArray<string> = container.args
const flag = (name: string, from: ReadonlyArray<string> = args) => {
  const index = from.indexOf(name)
  assert.notStrictEqual(index, -1, `${name} is given`)
  return from[index + 1]!
}

/** A Dockerfile instruction's JSON-array form (`ENTRYPOINT [...]`). */
const instruction = (name: string): ReadonlyArray<string> => {
  const line = dockerfile.split("\n").find((text) => text.startsWith(`${name} `))
  assert.isDefined(line, `the Dockerfile has ${name}`)
  return JSON.parse(line!.slice(name.length + 1))
}

const quantityBytes = (quantity: string): number => {
  const match = /^(\d+)(Ki|Mi|Gi)?$/.exec(quantity)
  assert.isNotNull(match, `quantity ${quantity}`)
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 }[match![2] as "Ki" | "Mi" | "Gi"] ?? 1
  return Number(match![1]) * unit
}

describe("deploy/: the Kubernetes manifests", () => {
  it("every object is valid by the Kubernetes schemas", () => {
    assert.deepStrictEqual(documents.map((document) => document.kind), ["Service", "StatefulSet", "NetworkPolicy"])
    new Service(service).validate()
    new StatefulSet(statefulSet).validate()
    new NetworkPolicy(networkPolicy).validate()
  })

  it("no object has a field Kubernetes does not know (the models' types, with excess-property checks)", () => {
    const dir = join(root, ".cache", "deploy-types")
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    const source = [
      `import type { IStatefulSet } from "kubernetes-models/apps/v1/StatefulSet"`,
      `import type { IService } from "kubernetes-models/v1/Service"`,
      `import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy"`,
      `export const service = ${JSON.stringify(service)} satisfies IService`,
      `export const statefulSet = ${JSON.stringify(statefulSet)} satisfies IStatefulSet`,
      `export const networkPolicy = ${JSON.stringify(networkPolicy)} satisfies INetworkPolicy`,
      ``
    ].join("\n")
    writeFileSync(join(dir, "manifests.ts"), source)
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        extends: "../../tsconfig.json",
        compilerOptions: { rootDir: "../..", noEmit: true },
        include: ["manifests.ts"]
      })
    )
    try {
      execFileSync(join(root, "node_modules", ".bin", "tsc"), ["-p", dir], { encoding: "utf8", stdio: "pipe" })
    } catch (error) {
      assert.fail(`the manifests do not type-check:\n${(error as { stdout: string }).stdout}`)
    }
  })

  it("names agree: selectors and labels, the Service and its ports, the probes' port and path", () => {
    const labels = statefulSet.spec.template.metadata.labels
    assert.deepStrictEqual(statefulSet.spec.selector.matchLabels, labels)
    assert.deepStrictEqual(service.spec.selector, labels)
    assert.deepStrictEqual(networkPolicy.spec.podSelector.matchLabels, labels)
    assert.strictEqual(statefulSet.spec.serviceName, service.metadata.name)
    assert.strictEqual(service.spec.clusterIP, "None", "headless: one DNS name per pod, so a client resumes on its pod")
    const ports = new Map(container.ports.map((port: any) => [port.name, port.containerPort]))
    for (const name of ports.keys()) {
      // IANA_SVC_NAME: what Kubernetes requires of a port's name
      assert.match(name as string, /^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]+(-[a-z0-9]+)*$/, `port name ${name}`)
    }
    assert.isTrue(ports.has(service.spec.ports[0].targetPort))
    assert.isTrue(ports.has(networkPolicy.spec.ingress[0].ports[0].port))
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      assert.strictEqual(probe.httpGet.path, WebSocketListener.healthPath)
      assert.isTrue(ports.has(probe.httpGet.port))
    }
    const listen = new URL(flag("--listen"))
    assert.strictEqual(Number(listen.port), ports.get("exec-server"))
    assert.strictEqual(listen.hostname, "0.0.0.0")
  })

  it("the token: a Secret's key mounted where --token-file reads it, the Secret made as the comment says", () => {
    const created = /kubectl create secret generic (\S+) --from-literal=(\w+)=/.exec(manifestText)
    assert.isNotNull(created, "the manifest says how to create the Secret")
    const volume = pod.volumes.find((volume: any) => volume.secret !== undefined)
    assert.strictEqual(volume.secret.secretName, created![1])
    assert.strictEqual(volume.secret.items[0].key, created![2])
    assert.strictEqual(volume.secret.defaultMode, 0o440)
    const mount = container.volumeMounts.find((mount: any) => mount.name === volume.name)
    assert.isTrue(mount.readOnly)
    assert.strictEqual(flag("--token-file"), `${mount.mountPath}/${volume.secret.items[0].path}`)
    assert.strictEqual(flag("--token-file", instruction("CMD")), flag("--token-file"), "the image's default agrees")
    assert.notInclude(manifestText, "kind: Secret", "no token is committed")
  })

  it("non-root, read-only root file system, writable only on emptyDir volumes, nothing more than needed", () => {
    assert.isTrue(pod.securityContext.runAsNonRoot)
    const user = /^USER (\d+):(\d+)$/m.exec(dockerfile)
    assert.isNotNull(user, "the image names its user by number")
    assert.strictEqual(pod.securityContext.runAsUser, Number(user![1]))
    assert.notStrictEqual(pod.securityContext.runAsUser, 0)
    assert.strictEqual(pod.securityContext.seccompProfile.type, "RuntimeDefault")
    assert.isFalse(pod.automountServiceAccountToken)
    const security = container.securityContext
    assert.isTrue(security.readOnlyRootFilesystem)
    assert.isFalse(security.allowPrivilegeEscalation)
    assert.deepStrictEqual(security.capabilities.drop, ["ALL"])
    assert.isUndefined(security.capabilities.add)
    const writable = container.volumeMounts.filter((mount: any) => mount.readOnly !== true)
    assert.deepStrictEqual(writable.map((mount: any) => mount.mountPath).sort(), ["/tmp", "/work"])
    for (const mount of writable) {
      assert.isDefined(pod.volumes.find((volume: any) => volume.name === mount.name).emptyDir, mount.mountPath)
    }
    assert.strictEqual(container.workingDir, "/work")
    assert.match(dockerfile, /^WORKDIR \/work$/m)
  })

  it("the limits fit the server's own: retention and file bytes in flight, with a gigabyte left for the commands", () => {
    const maxProcesses = Number(flag("--max-processes"))
    const maxFileBytes = Number(flag("--max-file-bytes"))
    assert.isAtMost(Number(flag("--max-processes-per-session")), maxProcesses)
    assert.isAtMost(maxFileBytes, Defaults.fileSystem.maxFileBytes)
    const serverBound = maxProcesses * Defaults.processTable.retainedBytes + Defaults.fileSystem.maxBytesInFlight
    const limits = container.resources.limits
    assert.isAtLeast(quantityBytes(limits.memory) - serverBound, 2 ** 30)
    assert.isAtMost(quantityBytes(container.resources.requests.memory), quantityBytes(limits.memory))
    const scratch = pod.volumes.filter((volume: any) => volume.emptyDir !== undefined)
    const scratchBytes = scratch.reduce((sum: number, volume: any) => sum + quantityBytes(volume.emptyDir.sizeLimit), 0)
    assert.isAtMost(scratchBytes, quantityBytes(limits["ephemeral-storage"]))
    assert.isAtLeast(pod.terminationGracePeriodSeconds, 10)
  })
})

describe("Dockerfile", () => {
  it("a slim Node image of the version the project runs on, the CLI as entrypoint, the port exposed", () => {
    const images = [...dockerfile.matchAll(/^FROM node:(\S+)/gm)].map((match) => match[1]!)
    assert.lengthOf(images, 2, "a build stage and a run stage")
    for (const image of images) {
      assert.match(image, /-slim$/)
      assert.strictEqual(image.split("-")[0], packageJson.devDependencies.node)
    }
    assert.deepStrictEqual(instruction("ENTRYPOINT"), ["node", "--max-semi-space-size=1", "/app/dist/effect-exec.cjs"])
    // what the run stage copies is what the build writes (scripts/build.ts), and the bundle's one external add-on
    const copied = [...dockerfile.matchAll(/^COPY --from=build (.+) \S+$/gm)].flatMap((match) => match[1]!.split(" "))
    assert.deepStrictEqual(copied, [
      "/src/package.json",
      "/src/dist/effect-exec.cjs",
      "/src/dist/cli.cjs",
      "/src/node_modules/@lydell"
    ])
    assert.include(readFileSync(join(root, "scripts", "build.ts"), "utf8"), `"@lydell/node-pty"`)
    assert.match(dockerfile, /^RUN node scripts\/build\.ts$/m)
    const exposed = /^EXPOSE (\d+)$/m.exec(dockerfile)
    assert.strictEqual(Number(exposed![1]), container.ports[0].containerPort)
    assert.strictEqual(new URL(flag("--listen", instruction("CMD"))).port, exposed![1])
    // the executable's shebang flag is the entrypoint's too
    assert.include(readFileSync(bin, "utf8").split("\n")[0], "--max-semi-space-size=1")
  })

  it.live("the entrypoint's flags are the CLI's: serve accepts the manifest's arguments and answers its probes", () =>
    Effect.gen(function*() {
      const help = execFileSync(process.execPath, [bin, "serve", "--help"], { encoding: "utf8" })
      for (const name of [...args, ...instruction("CMD")].filter((arg) => arg.startsWith("--"))) {
        assert.include(help, `  ${name} `, `serve --help names ${name}`)
      }
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "deploy-token-"))),
        (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
      )
      writeFileSync(join(dir, "token"), "a-token\n")
      // the manifest's arguments as they are, but on loopback and with the token file here
      const local = args.slice(1).map((arg, index, all) =>
        all[index - 1] === "--listen"
          ? "ws://127.0.0.1:0"
          : all[index - 1] === "--token-file"
          ? join(dir, "token")
          : arg
      )
      const server = yield* spawnServe(local)
      const status = yield* Effect.callback<number>((resume) => {
        const { hostname, port } = new URL(server.url)
        Http.get({ hostname, port, path: container.livenessProbe.httpGet.path }, (response) => {
          response.resume()
          resume(Effect.succeed(response.statusCode!))
        }).on("error", (error) => resume(Effect.die(error)))
      })
      assert.strictEqual(status, 200)
      assert.strictEqual(args[0], "serve")
    }))
})
