// The effect-exec command line. `npm run build` bundles it with everything it imports into dist/cli.cjs (the
// installed executable is dist/effect-exec.cjs); in a clone, `node bin/effect-exec.ts …` runs the sources as they are.
import { runMain } from "../src/Cli.ts"

runMain()
