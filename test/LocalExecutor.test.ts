import * as LocalExecutor from "../src/LocalExecutor.ts"
import { suite } from "./support/ExecutorContract.ts"

suite("LocalExecutor", LocalExecutor.layer(), { extensions: true })
